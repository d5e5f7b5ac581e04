// RaftLog: the whole log as the core sees it — the durable part (Storage) followed by the
// unstable part (entries and possibly a snapshot handed to the application in Ready but not
// yet reported persisted) — plus the commit and applied indexes.
//
// Invariants (asserted where they change):
//   applied <= committed <= LastIndex()
//   an unstable snapshot, if present, covers exactly up to unstable_offset - 1
//   unstable entries are contiguous from unstable_offset
//
// Thread-safety: none; owned by one Raft instance.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace synod::raft {

// Entries and snapshot not yet persisted by the application.
class Unstable {
 public:
  explicit Unstable(LogIndex offset) : offset_(offset) {}

  // The index of the first entry if only a snapshot is unstable.
  std::optional<LogIndex> MaybeFirstIndex() const;
  // The last index of unstable entries or of the unstable snapshot.
  std::optional<LogIndex> MaybeLastIndex() const;
  std::optional<Term> MaybeTerm(LogIndex i) const;

  // Entries and snapshot up to (index, term) were persisted: drop them from here, unless the
  // entry at index has since been replaced by one of another term.
  void StableTo(LogIndex index, Term term);
  void StableSnapTo(LogIndex index);
  void Restore(Snapshot snap);
  // Appends, truncating any unstable suffix that conflicts. `ents` is taken by value so that a
  // caller handing its vector over (std::move) pays no copy of the payloads.
  // REQUIRES: ents contiguous, non-empty, ents[0].index <= (last unstable index)+1 and
  // ents[0].index >= the first index still known to the log.
  void TruncateAndAppend(std::vector<Entry> ents);

  // Entries in [lo, hi) that are unstable. REQUIRES: offset <= lo <= hi <= offset+size.
  std::vector<Entry> Slice(LogIndex lo, LogIndex hi) const;

  LogIndex offset() const { return offset_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const std::optional<Snapshot>& snapshot() const { return snapshot_; }

 private:
  std::optional<Snapshot> snapshot_;
  std::vector<Entry> entries_;
  LogIndex offset_;  // index of entries_[0]
};

class RaftLog {
 public:
  // Starts on `storage` with committed = applied = FirstIndex()-1.
  // `max_applying_bytes` bounds the committed entries returned by one NextCommittedEntries.
  RaftLog(const Storage* storage, uint64_t max_applying_bytes, Logger logger);

  // Follower append (Raft Figure 2 "AppendEntries" rules 2-5): if the entry at (index,
  // log_term) matches, appends `ents` (truncating any conflict), advances commit to
  // min(committed, index of last new entry), and returns the last new index. Returns nullopt
  // when the log does not contain (index, log_term).
  // A conflict below `committed` is an invariant violation (crash). `ents` is taken by value
  // (moved in, it is not copied).
  std::optional<LogIndex> MaybeAppend(LogIndex index, Term log_term, LogIndex committed,
                                      std::vector<Entry> ents);
  // Appends to the unstable tail; returns the new last index. `ents` is taken by value (moved
  // in, it is not copied).
  // REQUIRES: ents[0].index - 1 >= committed (never overwrites committed entries).
  LogIndex Append(std::vector<Entry> ents);

  // The index of the first entry in ents that conflicts with the log (same index, other
  // term), or of the first entry beyond the log; 0 if every entry is already present.
  LogIndex FindConflict(const std::vector<Entry>& ents) const;
  // For fast backtracking: the largest index <= index whose term is <= term (0 if none).
  // Returns also that entry's term.
  std::pair<LogIndex, Term> FindConflictByTerm(LogIndex index, Term term) const;

  LogIndex FirstIndex() const;
  LogIndex LastIndex() const;
  Term LastTerm() const;
  // Term of entry i; kCompacted / kUnavailableEntries as Storage::TermAt.
  Result<Term> TermAt(LogIndex i) const;
  // 0 when the term is not known (compacted or beyond the log).
  Term ZeroTermOnError(Result<Term> t) const { return t.ok() ? t.value() : Term(0); }
  bool MatchTerm(LogIndex i, Term t) const;

  // Entries [i, LastIndex()] bounded by max_bytes (at least one if any).
  Result<std::vector<Entry>> EntriesFrom(LogIndex i, uint64_t max_bytes) const;
  // Entries in [lo, hi) bounded by max_bytes (at least one if lo < hi).
  Result<std::vector<Entry>> Slice(LogIndex lo, LogIndex hi, uint64_t max_bytes) const;
  // All entries (for tests and describe output).
  std::vector<Entry> AllEntries() const;

  // Raft §5.4.1: is a log ending at (last_index, last_term) at least as up to date as ours?
  bool IsUpToDate(LogIndex last_index, Term last_term) const;

  // Moves commit forward to max_index if its term is `term` (Raft §5.4.2: a leader commits
  // only entries of its own term by counting). Returns true if commit moved.
  bool MaybeCommit(LogIndex max_index, Term term);
  // REQUIRES: committed <= to <= LastIndex(); commit never moves back.
  void CommitTo(LogIndex to);
  // REQUIRES: committed_ >= i > applied_ (or i == applied_).
  void AppliedTo(LogIndex i);

  bool HasNextCommittedEntries() const;
  // Committed entries not yet handed out for applying (after `applying_`), bounded by
  // max_applying_bytes. Only entries <= persisted-or-unstable-in-this-ready are returned.
  std::vector<Entry> NextCommittedEntries() const;
  // Records that entries up to i were handed to the application for applying.
  void AcceptApplying(LogIndex i);

  bool HasPendingSnapshot() const { return unstable_.snapshot().has_value(); }
  // The snapshot to hand out: the unstable one if any, else the storage's.
  Result<Snapshot> GetSnapshot() const;
  // Replaces the log with the snapshot (follower receiving kSnap).
  void Restore(Snapshot snap);

  void StableTo(LogIndex index, Term term) { unstable_.StableTo(index, term); }
  void StableSnapTo(LogIndex index) { unstable_.StableSnapTo(index); }

  const Unstable& unstable() const { return unstable_; }
  LogIndex committed() const { return committed_; }
  LogIndex applied() const { return applied_; }
  LogIndex applying() const { return applying_; }

  // "committed=5 applied=3 applying=4 unstable.offset=6 len(unstable.entries)=2".
  std::string ToString() const;

 private:
  // TermAt without building a Status: the error paths of TermAt are taken on every follower
  // append (FindConflict probes the first index beyond the log) and must not allocate.
  // Sets *term and returns kOk, or returns kCompacted / kUnavailableEntries.
  Code TermLookup(LogIndex i, Term* term) const;

  const Storage* storage_;
  Unstable unstable_;
  LogIndex committed_;
  LogIndex applying_;  // highest index handed to the application (>= applied_)
  LogIndex applied_;
  uint64_t max_applying_bytes_;
  Logger logger_;
};

}  // namespace synod::raft
