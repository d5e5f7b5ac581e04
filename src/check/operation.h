// Operation and History: what a client did to a key-value register, as a checker sees it.
//
// One Operation is one request a client sent (call) and, unless its outcome is unknown, the
// reply it received (return). Times are nanoseconds on one clock shared by all clients; only
// their order matters. A History is every operation of a test run, in any order.
//
// Semantics of the fields, per operation type (docs/check.md has the file format):
//   get  value = what was read (nullopt = the key was absent). ok:false = the read failed
//        (an error reply); it carries no information and is ignored.
//   put  value = what was written (required). ok:false = the write definitely did not happen.
//   del  value and expected unused. ok:false = the delete definitely did not happen.
//   cas  "if the key holds `expected` then set it to `value`". expected = nullopt means "if the
//        key is absent"; value = nullopt means "delete it". ok:true = the comparison held and
//        the write happened; ok:false = the comparison failed and nothing was written.
//   unknown:true = the client never learned the outcome (timeout, lost connection): the
//        operation may have taken effect at any time after its call, or never. return_ns and
//        ok are then meaningless.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace synod::check {

enum class OpType : uint8_t { kGet, kPut, kDel, kCas };

// "get", "put", "del" or "cas": the names used in history files.
std::string_view OpTypeName(OpType type);

struct Operation {
  int64_t client = 0;  // who issued it; only used in reports
  OpType type = OpType::kGet;
  std::string key;
  std::optional<std::string> value;     // see the table above
  std::optional<std::string> expected;  // cas only
  int64_t call_ns = 0;
  int64_t return_ns = 0;  // REQUIRES: >= call_ns unless `unknown`
  bool ok = true;
  bool unknown = false;

  bool operator==(const Operation&) const = default;
};

// Every operation of a run. Order does not matter to the checker; reports name an operation
// by its 1-based position ("op #7"), which is its line in a history file without blank lines.
using History = std::vector<Operation>;

// OK when `op` is well formed: put has a value, get/put/del have no `expected`, del has no
// value, and a known operation does not return before it was called. The message names the
// offending field but not the operation (callers add "line N: " or similar).
Status ValidateOperation(const Operation& op);

// One readable line, e.g. `client 3 cas "k1" "a" -> "b": ok  [call 100, return 250]`.
std::string FormatOperation(const Operation& op);

// `s` in double quotes, with quotes, backslashes and non-printable bytes escaped, cut after
// 64 bytes. nullopt is printed as `nil`.
std::string QuoteValue(const std::optional<std::string>& s);

}  // namespace synod::check
