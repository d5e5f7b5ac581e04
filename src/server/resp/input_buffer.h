// Internal pieces shared by the request and reply parsers: the byte buffer they parse from
// and Redis's strict integer syntax. Not part of the codec's public API.
//
// Thread-safety: InputBuffer is a value owned by one parser; not safe for concurrent use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace synod::resp::internal {

// Bytes received but not yet parsed. Consumed bytes are dropped lazily: the prefix is only
// moved away once it is at least as long as what remains, so every byte is moved at most once
// on average and feeding n bytes in any split costs O(n).
class InputBuffer {
 public:
  // Appends `bytes` after the unconsumed ones.
  void Append(std::string_view bytes);

  // The bytes not yet consumed.
  std::string_view Unconsumed() const { return std::string_view(buf_).substr(pos_); }
  size_t size() const { return buf_.size() - pos_; }
  bool empty() const { return pos_ == buf_.size(); }
  // Memory held, for accounting.
  size_t capacity() const { return buf_.capacity(); }

  // Drops the first n unconsumed bytes. REQUIRES: n <= size().
  void Consume(size_t n);

  // Returns the offset (from the first unconsumed byte) of the first `delim`, or npos.
  // It remembers how far it looked, so a long line arriving a byte at a time is scanned once
  // rather than once per byte (which would be quadratic). The memory is reset by Consume, so
  // between two Consume calls every Find must use the same delimiter.
  size_t Find(char delim);

  static constexpr size_t npos = std::string_view::npos;

 private:
  // A buffer emptied while holding more than this is released, so one large pipeline does not
  // pin its peak memory for the life of the connection.
  static constexpr size_t kKeepCapacityMax = 1 << 20;
  // Below this the consumed prefix is not worth moving.
  static constexpr size_t kCompactMinBytes = 4096;

  std::string buf_;
  size_t pos_ = 0;      // first unconsumed byte
  size_t scanned_ = 0;  // bytes after pos_ known not to hold the delimiter of the current Find
};

// Parses s as Redis's string2ll does: optional '-', then digits without a leading zero (except
// "0" itself), no spaces or '+', at most 20 characters, no overflow. Returns false otherwise.
bool ParseInt64(std::string_view s, int64_t* out);

// Appends `piece` to *arg, which will hold `total` bytes when complete. Capacity grows
// geometrically but never past `total`, so memory follows bytes actually received rather than
// a length a client merely claimed, and appending n bytes costs amortised O(n).
void AppendBounded(std::string* arg, uint64_t total, std::string_view piece);

}  // namespace synod::resp::internal
