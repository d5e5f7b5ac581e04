#include "server/resp/input_buffer.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/assert.h"

namespace synod::resp::internal {

void InputBuffer::Append(std::string_view bytes) {
  if (bytes.empty()) return;
  if (pos_ > 0 && pos_ >= kCompactMinBytes && pos_ >= size()) {
    // Moving the remainder costs at most pos_ bytes, and those pos_ bytes are never moved
    // again: the total work stays linear in the bytes fed.
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

void InputBuffer::Consume(size_t n) {
  SYNOD_ASSERT(n <= size());
  pos_ += n;
  scanned_ = 0;
  if (pos_ == buf_.size()) {
    pos_ = 0;
    if (buf_.capacity() > kKeepCapacityMax) {
      std::string().swap(buf_);
    } else {
      buf_.clear();
    }
  }
}

size_t InputBuffer::Find(char delim) {
  SYNOD_ASSERT(scanned_ <= size());
  const char* start = buf_.data() + pos_ + scanned_;
  const size_t left = size() - scanned_;
  const void* hit = left == 0 ? nullptr : std::memchr(start, delim, left);
  if (hit == nullptr) {
    scanned_ = size();
    return npos;
  }
  const size_t offset = static_cast<const char*>(hit) - (buf_.data() + pos_);
  scanned_ = offset;  // a repeated Find returns the same hit without scanning again
  return offset;
}

bool ParseInt64(std::string_view s, int64_t* out) {
  // Redis rejects strings of LONG_STR_SIZE (21) or more characters outright.
  if (s.empty() || s.size() > 20) return false;
  if (s == "0") {
    *out = 0;
    return true;
  }
  size_t i = 0;
  const bool negative = s[0] == '-';
  if (negative) ++i;
  if (i == s.size() || s[i] < '1' || s[i] > '9') return false;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    v = v * 10 + digit;
  }
  constexpr uint64_t kMaxPositive = std::numeric_limits<int64_t>::max();
  if (negative) {
    if (v > kMaxPositive + 1) return false;
    // Negating in unsigned arithmetic is well defined and maps 2^63 to INT64_MIN.
    *out = static_cast<int64_t>(~v + 1);
  } else {
    if (v > kMaxPositive) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

void AppendBounded(std::string* arg, uint64_t total, std::string_view piece) {
  SYNOD_ASSERT(arg->size() + piece.size() <= total);
  const size_t need = arg->size() + piece.size();
  if (need > arg->capacity()) {
    const uint64_t doubled = std::max<uint64_t>(need, 2 * uint64_t{arg->capacity()});
    // Not arg->reserve(): libstdc++ rounds a reserve up to twice the old capacity, which
    // would overshoot `total`. A fresh string gets exactly what is asked, for the same copy.
    std::string grown;
    grown.reserve(static_cast<size_t>(std::min<uint64_t>(total, doubled)));
    grown.append(*arg);
    arg->swap(grown);
  }
  arg->append(piece);
}

}  // namespace synod::resp::internal
