#include "raft/raft_log.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <limits>
#include <utility>

#include "common/assert.h"

namespace synod::raft {

namespace {

// An unstable vector that has emptied keeps its capacity for the next appends, unless a burst
// grew it beyond this many entries: then the memory is returned.
constexpr size_t kUnstableRetainedCapacityMax = size_t{1} << 16;

// How many of ents[begin, end) fit when `bytes` are already taken of max_bytes (etcd's
// limitSize). When `at_least_one` the first is taken whatever its size, so that an entry
// larger than max_bytes can still make progress.
size_t CountWithinBytes(const std::vector<Entry>& ents, size_t begin, size_t end, uint64_t bytes,
                        uint64_t max_bytes, bool at_least_one) {
  size_t n = 0;
  for (size_t i = begin; i < end; ++i) {
    bytes += ents[i].PayloadBytes();
    if (bytes > max_bytes && !(at_least_one && n == 0)) break;
    ++n;
  }
  return n;
}

uint64_t TotalBytes(const std::vector<Entry>& ents) {
  uint64_t bytes = 0;
  for (const Entry& e : ents) bytes += e.PayloadBytes();
  return bytes;
}

const Storage* CheckedStorage(const Storage* storage) {
  SYNOD_ASSERT_MSG(storage != nullptr, "RaftLog needs a storage");
  return storage;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Unstable

std::optional<LogIndex> Unstable::MaybeFirstIndex() const {
  if (snapshot_.has_value()) return snapshot_->meta.index + 1;
  return std::nullopt;
}

std::optional<LogIndex> Unstable::MaybeLastIndex() const {
  if (!entries_.empty()) return offset_ + (entries_.size() - 1);
  if (snapshot_.has_value()) return snapshot_->meta.index;
  return std::nullopt;
}

std::optional<Term> Unstable::MaybeTerm(LogIndex i) const {
  if (i < offset_) {
    // Below the entries only the snapshot's last entry is known here.
    if (snapshot_.has_value() && snapshot_->meta.index == i) return snapshot_->meta.term;
    return std::nullopt;
  }
  const uint64_t pos = i.value() - offset_.value();
  if (pos >= entries_.size()) return std::nullopt;
  return entries_[pos].term;
}

void Unstable::StableTo(LogIndex index, Term term) {
  const std::optional<Term> t = MaybeTerm(index);
  // Not here (already stable), or only the snapshot matched (StableSnapTo handles that).
  if (!t.has_value() || index < offset_) return;
  // The entry was replaced by a new leader's while the old one was being persisted: what
  // became durable is not what we hold, so nothing here is stable yet.
  if (*t != term) return;
  const size_t n = index.value() + 1 - offset_.value();
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<ptrdiff_t>(n));
  offset_ = index + 1;
  if (entries_.empty() && entries_.capacity() > kUnstableRetainedCapacityMax) {
    entries_.shrink_to_fit();
  }
}

void Unstable::StableSnapTo(LogIndex index) {
  if (snapshot_.has_value() && snapshot_->meta.index == index) snapshot_.reset();
}

void Unstable::Restore(Snapshot snap) {
  offset_ = snap.meta.index + 1;
  entries_.clear();
  snapshot_ = std::move(snap);
}

void Unstable::TruncateAndAppend(std::vector<Entry> ents) {
  SYNOD_ASSERT_MSG(!ents.empty(), "TruncateAndAppend of nothing");
  const LogIndex from = ents.front().index;
  SYNOD_ASSERT_MSG(ents.back().index == from + (ents.size() - 1), "non-contiguous entries");
  const LogIndex end = offset_ + entries_.size();
  if (from <= offset_) {
    // Nothing unstable is kept (the usual case once the previous entries were persisted, or
    // a truncation before all of them): take the caller's vector whole. Its buffer is adopted only
    // if it is at least as large as ours, so that a retained capacity is not traded for a smaller
    // one that would have to regrow.
    if (ents.capacity() >= entries_.capacity()) {
      entries_.swap(ents);
    } else {
      entries_.clear();
      entries_.insert(entries_.end(), std::make_move_iterator(ents.begin()),
                      std::make_move_iterator(ents.end()));
    }
    offset_ = from;
    return;
  }
  if (from != end) {
    // Keep [offset_, from) and replace the rest.
    SYNOD_ASSERT_MSG(from < end, "TruncateAndAppend would leave a gap");
    entries_.resize(from.value() - offset_.value());
  }
  // The common case: the entries directly follow ours.
  entries_.insert(entries_.end(), std::make_move_iterator(ents.begin()),
                  std::make_move_iterator(ents.end()));
}

std::vector<Entry> Unstable::Slice(LogIndex lo, LogIndex hi) const {
  SYNOD_ASSERT_MSG(lo <= hi, "unstable slice lo > hi");
  SYNOD_ASSERT_MSG(offset_ <= lo && hi <= offset_ + entries_.size(),
                   "unstable slice out of bounds");
  const auto begin = entries_.begin() + static_cast<ptrdiff_t>(lo.value() - offset_.value());
  const auto end = entries_.begin() + static_cast<ptrdiff_t>(hi.value() - offset_.value());
  return std::vector<Entry>(begin, end);
}

// ---------------------------------------------------------------------------------------------
// RaftLog

RaftLog::RaftLog(const Storage* storage, uint64_t max_applying_bytes, Logger logger)
    : storage_(CheckedStorage(storage)),
      unstable_(storage_->LastIndex() + 1),
      // Everything in storage up to the last compaction point was committed and applied.
      committed_(storage_->FirstIndex() - 1),
      applying_(committed_),
      applied_(committed_),
      max_applying_bytes_(max_applying_bytes),
      logger_(std::move(logger)) {}

std::optional<LogIndex> RaftLog::MaybeAppend(LogIndex index, Term log_term, LogIndex committed,
                                             std::vector<Entry> ents) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  SYNOD_ASSERT_MSG(ents.empty() || ents.front().index == index + 1,
                   "appended entries do not follow (index, log_term)");
  const LogIndex last_new = index + ents.size();
  const LogIndex conflict = FindConflict(ents);
  if (conflict != LogIndex(0)) {
    if (conflict <= committed_) {
      logger_.Error("entry {} conflicts with committed entry [committed({})]", conflict.value(),
                    committed_.value());
    }
    SYNOD_ASSERT_MSG(conflict > committed_, "conflict with a committed entry");
    const size_t skip = conflict.value() - (index.value() + 1);
    SYNOD_ASSERT(skip < ents.size());
    // Usually skip == 0 (all entries new) and the entries move into unstable without a copy.
    if (skip > 0) ents.erase(ents.begin(), ents.begin() + static_cast<ptrdiff_t>(skip));
    Append(std::move(ents));
  }
  // The leader's commit may be ahead of what it sent us; commit only what we know matches.
  CommitTo(std::min(committed, last_new));
  return last_new;
}

LogIndex RaftLog::Append(std::vector<Entry> ents) {
  if (ents.empty()) return LastIndex();
  if (ents.front().index <= committed_) {
    logger_.Error("after({}) is out of range [committed({})]", ents.front().index.value() - 1,
                  committed_.value());
  }
  SYNOD_ASSERT_MSG(ents.front().index > committed_, "append would overwrite committed entries");
  unstable_.TruncateAndAppend(std::move(ents));
  return LastIndex();
}

LogIndex RaftLog::FindConflict(const std::vector<Entry>& ents) const {
  for (const Entry& e : ents) {
    if (MatchTerm(e.index, e.term)) continue;
    if (e.index <= LastIndex()) {
      Term existing;
      (void)TermLookup(e.index, &existing);  // 0 when unknown, for the log line only
      logger_.Info("found conflict at index {} [existing term: {}, conflicting term: {}]",
                   e.index.value(), existing.value(), e.term.value());
    }
    return e.index;
  }
  return LogIndex(0);
}

std::pair<LogIndex, Term> RaftLog::FindConflictByTerm(LogIndex index, Term term) const {
  // Bounded by index: one step per entry walked back.
  for (; index > LogIndex(0); index = index - 1) {
    Term ours;
    // Compacted or beyond the log: whether it matches is unknown, so guess that it may and
    // report the term as 0 (unknown).
    if (TermLookup(index, &ours) != Code::kOk) return {index, Term(0)};
    if (ours <= term) return {index, ours};
  }
  return {LogIndex(0), Term(0)};
}

LogIndex RaftLog::FirstIndex() const {
  if (const std::optional<LogIndex> i = unstable_.MaybeFirstIndex()) return *i;
  return storage_->FirstIndex();
}

LogIndex RaftLog::LastIndex() const {
  if (const std::optional<LogIndex> i = unstable_.MaybeLastIndex()) return *i;
  return storage_->LastIndex();
}

Term RaftLog::LastTerm() const {
  Term t;
  const Code code = TermLookup(LastIndex(), &t);
  SYNOD_ASSERT_MSG(code == Code::kOk, "the term of the last entry is unknown");
  return t;
}

Code RaftLog::TermLookup(LogIndex i, Term* term) const {
  // The unstable tail first: it holds the recent entries, and a hit there is in range.
  if (const std::optional<Term> t = unstable_.MaybeTerm(i)) {
    *term = *t;
    return Code::kOk;
  }
  // The valid range is [FirstIndex()-1, LastIndex()]: the dummy entry's term stays known
  // for matching appends even though the entry itself is compacted.
  if (i + 1 < FirstIndex()) return Code::kCompacted;
  if (i > LastIndex()) return Code::kUnavailableEntries;
  Result<Term> t = storage_->TermAt(i);
  if (t.ok()) {
    *term = t.value();
    return Code::kOk;
  }
  const Code code = t.status().code();
  SYNOD_ASSERT_MSG(code == Code::kCompacted || code == Code::kUnavailableEntries,
                   "unexpected storage error reading a term");
  return code;
}

Result<Term> RaftLog::TermAt(LogIndex i) const {
  Term t;
  switch (TermLookup(i, &t)) {
    case Code::kOk:
      return t;
    case Code::kCompacted:
      return Status(Code::kCompacted, "term compacted");
    default:
      return Status(Code::kUnavailableEntries, "term beyond the last index");
  }
}

bool RaftLog::MatchTerm(LogIndex i, Term t) const {
  Term ours;
  return TermLookup(i, &ours) == Code::kOk && ours == t;
}

Result<std::vector<Entry>> RaftLog::EntriesFrom(LogIndex i, uint64_t max_bytes) const {
  const LogIndex last = LastIndex();
  if (i > last) return std::vector<Entry>();
  return Slice(i, last + 1, max_bytes);
}

Result<std::vector<Entry>> RaftLog::Slice(LogIndex lo, LogIndex hi, uint64_t max_bytes) const {
  SYNOD_ASSERT_MSG(lo <= hi, "slice lo > hi");
  if (lo < FirstIndex()) return Status(Code::kCompacted, "slice start compacted");
  SYNOD_ASSERT_MSG(hi <= LastIndex() + 1, "slice beyond the last index");
  if (lo == hi) return std::vector<Entry>();

  std::vector<Entry> ents;
  uint64_t bytes = 0;
  const LogIndex offset = unstable_.offset();
  if (lo < offset) {
    const LogIndex stored_hi = std::min(hi, offset);
    Result<std::vector<Entry>> stored = storage_->Entries(lo, stored_hi, max_bytes);
    if (!stored.ok()) {
      SYNOD_ASSERT_MSG(stored.status().code() == Code::kCompacted,
                       "storage cannot serve entries the log says it has");
      return stored.status();
    }
    ents = std::move(stored).value();
    // Storage stopped early: the byte limit is reached.
    if (ents.size() < stored_hi.value() - lo.value()) return ents;
    if (hi > offset) bytes = TotalBytes(ents);
  }
  if (hi > offset) {
    const std::vector<Entry>& unstable = unstable_.entries();
    const size_t begin = std::max(lo, offset).value() - offset.value();
    const size_t end = hi.value() - offset.value();
    SYNOD_ASSERT(end <= unstable.size());
    const size_t n = CountWithinBytes(unstable, begin, end, bytes, max_bytes, ents.empty());
    ents.reserve(ents.size() + n);
    ents.insert(ents.end(), unstable.begin() + static_cast<ptrdiff_t>(begin),
                unstable.begin() + static_cast<ptrdiff_t>(begin + n));
  }
  return ents;
}

std::vector<Entry> RaftLog::AllEntries() const {
  Result<std::vector<Entry>> ents = EntriesFrom(FirstIndex(), std::numeric_limits<uint64_t>::max());
  SYNOD_ASSERT_MSG(ents.ok(), "reading the whole log failed");
  return std::move(ents).value();
}

bool RaftLog::IsUpToDate(LogIndex last_index, Term last_term) const {
  const Term our_term = LastTerm();
  return last_term > our_term || (last_term == our_term && last_index >= LastIndex());
}

bool RaftLog::MaybeCommit(LogIndex max_index, Term term) {
  // Term 0 never commits: it would match the 0 that stands for "unknown term".
  if (max_index <= committed_ || term == Term(0)) return false;
  Term ours;
  if (TermLookup(max_index, &ours) != Code::kOk || ours != term) return false;
  CommitTo(max_index);
  return true;
}

void RaftLog::CommitTo(LogIndex to) {
  if (to <= committed_) return;  // commit never moves back; a stale leader commit is ignored
  if (to > LastIndex()) {
    logger_.Error("tocommit({}) is out of range [lastIndex({})]", to.value(), LastIndex().value());
  }
  SYNOD_ASSERT_MSG(to <= LastIndex(), "commit beyond the last index: log lost or corrupted");
  committed_ = to;
}

void RaftLog::AppliedTo(LogIndex i) {
  SYNOD_ASSERT_MSG(applied_ <= i && i <= committed_, "applied index out of range");
  applied_ = i;
  // A snapshot applied by the application jumps applying forward as well.
  applying_ = std::max(applying_, i);
}

bool RaftLog::HasNextCommittedEntries() const {
  // While a snapshot is pending it must be applied first: the entries between applying_ and
  // the snapshot are not in the log any more.
  return !HasPendingSnapshot() && applying_ < committed_;
}

std::vector<Entry> RaftLog::NextCommittedEntries() const {
  if (!HasNextCommittedEntries()) return {};
  Result<std::vector<Entry>> ents = Slice(applying_ + 1, committed_ + 1, max_applying_bytes_);
  SYNOD_ASSERT_MSG(ents.ok(), "committed entries not yet applied are compacted");
  return std::move(ents).value();
}

void RaftLog::AcceptApplying(LogIndex i) {
  SYNOD_ASSERT_MSG(applying_ <= i && i <= committed_, "applying index out of range");
  applying_ = i;
}

Result<Snapshot> RaftLog::GetSnapshot() const {
  if (unstable_.snapshot().has_value()) return *unstable_.snapshot();
  return storage_->GetSnapshot();
}

void RaftLog::Restore(Snapshot snap) {
  logger_.Info("log [{}] starts to restore snapshot [index: {}, term: {}]", ToString(),
               snap.meta.index.value(), snap.meta.term.value());
  SYNOD_ASSERT_MSG(snap.meta.index >= committed_, "restore would move commit back");
  committed_ = snap.meta.index;
  // applied_ stays: the application reports the snapshot applied through AppliedTo(index),
  // which the assertion there allows since index == committed_.
  unstable_.Restore(std::move(snap));
}

std::string RaftLog::ToString() const {
  return fmt::format(
      "committed={} applied={} applying={} unstable.offset={} "
      "len(unstable.entries)={}",
      committed_.value(), applied_.value(), applying_.value(), unstable_.offset().value(),
      unstable_.entries().size());
}

}  // namespace synod::raft
