// Describe*: compact, deterministic, human-readable renderings of the Raft core's values
// (etcd's DescribeMessage / DescribeReady), for interaction scripts, tools and logs.
//
// The formats are stable: the golden outputs of src/raft/testdata/*.txt depend on them, so a
// change here means rewriting those files (raft_script test --rewrite) and reading the diff.
//
//   entry:      1/3 EntryNormal "data"          1/4 EntryConfChange v2 l3 r4
//   hard state: Term:2 Vote:1 Commit:5          (Vote omitted when none)
//   message:    1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal "x"]
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "raft/raw_node.h"
#include "raft/types.h"

namespace synod::raft {

// Quotes `data` like Go's %q: printable ASCII as is, '"' and '\' escaped, the rest as \xNN.
std::string QuoteData(std::string_view data);

// "term/index EntryNormal \"data\"" or "term/index EntryConfChange v2 v3 transition=explicit"
// (a conf change that leaves a joint configuration reads "EntryConfChange leave-joint").
std::string DescribeEntry(const Entry& e);
// The entries separated by `sep`.
std::string DescribeEntries(const std::vector<Entry>& ents, std::string_view sep);

// "Term:1 Vote:1 Commit:4"; the vote is left out when there is none.
std::string DescribeHardState(const HardState& hs);
// "Lead:1 State:StateLeader".
std::string DescribeSoftState(const SoftState& ss);
// "Voters:[1 2 3] VotersOutgoing:[1] Learners:[] LearnersNext:[] AutoLeave:true".
std::string DescribeConfState(const ConfState& cs);
// "Index:4 Term:1 ConfState:Voters:[1 2 3] ..." (the data is not shown, only its size when
// non-empty: " Data:12B").
std::string DescribeSnapshot(const Snapshot& snap);

// One line: "from->to Type Term:T Log:logterm/index" then, when set, " Rejected" (with
// " (Hint: N)" on append responses), " Commit:N", " Entries:[...]", " Context:\"c\"" and
// " Snapshot: ...".
std::string DescribeMessage(const Message& m);

// Several lines, each ending in '\n', starting with "Ready MustSync=true|false:" and then
// only the parts that are set: soft state, HardState, Snapshot, Entries, CommittedEntries,
// Messages (sendable at once), MessagesAfterPersist, ReadStates, AbortedReads.
// An empty Ready reads "<empty Ready>\n".
std::string DescribeReady(const Ready& rd);

}  // namespace synod::raft
