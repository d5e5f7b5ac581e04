// The memo of Lowe's search (wgl.h): which (set of linearized operations, register state)
// pairs were explored already. Internal to check/.
//
// Memory is what limits a long search, so sets are stored compactly. Operations are numbered
// so that non-optional ones come first, in call order, and optional ones last; the search
// linearizes roughly in call order, so the non-optional part of a set is a run of ones, a short
// ragged frontier and zeros. A set is stored as (leading all-ones words, frontier words,
// optional words), which for a key with 20,000 operations is a few words instead of 313.
//
// Thread-safety: none; owned by one search.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <vector>

namespace synod::check::internal {

// splitmix64's finalizer: a fixed, well-mixed hash of an integer (no randomness involved).
uint64_t Mix(uint64_t x);

// A set of bits [0, known_bits + optional_bits), with an incremental hash and the compact
// encoding described above.
class LinearizedSet {
 public:
  LinearizedSet(size_t known_bits, size_t optional_bits);

  void Flip(uint32_t bit);
  // Equal sets have equal hashes (Zobrist: the XOR of Mix(bit) over the members).
  uint64_t hash() const { return hash_; }
  // Appends the encoding; two sets are equal iff their encodings are.
  void Encode(std::vector<uint64_t>* out) const;
  size_t EncodedWords() const { return 2 + (end_ - lead_) + (words_.size() - known_words_); }

 private:
  size_t known_words_;
  std::vector<uint64_t> words_;  // known words, then optional words
  size_t lead_ = 0;              // words_[0, lead_) are all ones, words_[lead_] is not
  size_t end_ = 0;               // known words_[end_, known_words_) are zero, [end_ - 1] is not
  uint64_t hash_ = 0;
};

// A bounded hash set of (set encoding, state key) entries.
class MemoTable {
 public:
  // Past about bytes_max bytes it stops recording: Insert then always answers "new", which
  // keeps the search correct but lets it repeat work.
  explicit MemoTable(size_t bytes_max);
  MemoTable(const MemoTable&) = delete;
  MemoTable& operator=(const MemoTable&) = delete;

  // Returns false when (set, state_key) was inserted before, true otherwise.
  bool Insert(const LinearizedSet& set, uint64_t state_key);

  size_t size() const { return index_.size(); }

 private:
  struct Hasher {
    const MemoTable* t;
    size_t operator()(size_t offset) const { return t->arena_[offset + 1]; }
  };
  struct Equal {
    const MemoTable* t;
    bool operator()(size_t a, size_t b) const;
  };
  size_t BytesUsed() const;

  const size_t bytes_max_;
  // Entries back to back: [length in words, hash, state key, encoding...].
  std::vector<uint64_t> arena_;
  std::unordered_set<size_t, Hasher, Equal> index_;  // offsets into arena_
};

}  // namespace synod::check::internal
