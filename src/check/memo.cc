#include "check/memo.h"

#include <algorithm>

#include "common/assert.h"

namespace synod::check::internal {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

LinearizedSet::LinearizedSet(size_t known_bits, size_t optional_bits)
    : known_words_((known_bits + 63) / 64), words_(known_words_ + (optional_bits + 63) / 64, 0) {}

void LinearizedSet::Flip(uint32_t bit) {
  const size_t w = bit / 64;
  SYNOD_ASSERT(w < words_.size());
  words_[w] ^= uint64_t{1} << (bit % 64);
  hash_ ^= Mix(bit);
  if (w >= known_words_) return;
  if ((words_[w] >> (bit % 64)) & 1) {
    end_ = std::max(end_, w + 1);
    while (lead_ < known_words_ && words_[lead_] == ~uint64_t{0}) ++lead_;
  } else {
    lead_ = std::min(lead_, w);
    while (end_ > 0 && words_[end_ - 1] == 0) --end_;
  }
}

void LinearizedSet::Encode(std::vector<uint64_t>* out) const {
  // lead_ <= end_: the leading full words are not zero.
  out->push_back(lead_);
  out->push_back(end_);
  out->insert(out->end(), words_.begin() + static_cast<ptrdiff_t>(lead_),
              words_.begin() + static_cast<ptrdiff_t>(end_));
  out->insert(out->end(), words_.begin() + static_cast<ptrdiff_t>(known_words_), words_.end());
}

MemoTable::MemoTable(size_t bytes_max)
    : bytes_max_(bytes_max), index_(64, Hasher{this}, Equal{this}) {}

bool MemoTable::Equal::operator()(size_t a, size_t b) const {
  const uint64_t* pa = t->arena_.data() + a;
  const uint64_t* pb = t->arena_.data() + b;
  return pa[0] == pb[0] && std::equal(pa + 1, pa + pa[0], pb + 1);
}

size_t MemoTable::BytesUsed() const {
  // A node of the index costs about four words besides its bucket pointer.
  constexpr size_t kIndexBytesPerEntry = 40;
  return arena_.capacity() * sizeof(uint64_t) + index_.size() * kIndexBytesPerEntry;
}

bool MemoTable::Insert(const LinearizedSet& set, uint64_t state_key) {
  const size_t offset = arena_.size();
  const bool full = BytesUsed() >= bytes_max_;
  // A full table must not grow, not even for a lookup: without room, answer "new".
  if (full && offset + 3 + set.EncodedWords() > arena_.capacity()) return true;
  arena_.push_back(0);
  arena_.push_back(set.hash() ^ Mix(state_key ^ 0x5bd1e995ULL));
  arena_.push_back(state_key);
  set.Encode(&arena_);
  arena_[offset] = arena_.size() - offset;
  SYNOD_ASSERT(arena_[offset] == 3 + set.EncodedWords());
  if (!full) {
    if (index_.insert(offset).second) return true;
  } else if (index_.find(offset) == index_.end()) {
    arena_.resize(offset);
    return true;
  }
  arena_.resize(offset);
  return false;
}

}  // namespace synod::check::internal
