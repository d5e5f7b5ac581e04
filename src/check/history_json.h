// History files: one JSON object per line (JSON Lines), the format `synod check` reads and the
// simulator writes with --history-out. docs/check.md is the reference; in short:
//
//   {"client":3,"op":"cas","key":"k1","value":"v1","expected":"v0",
//    "call":123,"return":456,"ok":true,"unknown":false}
//
// Parsing text is not I/O, so this lives in the pure check/ folder; callers read the file.
//
// Thread-safety: free functions over values.
#pragma once

#include <string>
#include <string_view>

#include "check/operation.h"
#include "common/status.h"

namespace synod::check {

// Parses a whole history file. Blank lines are skipped; fields not listed in docs/check.md are
// ignored (so writers may add their own). On any problem returns InvalidArgument whose message
// starts with "line N: " (1-based) and names the field: malformed JSON, a missing required
// field, a field of the wrong type, an unknown op name, or a known operation that returns
// before it was called.
Result<History> ParseHistoryJsonl(std::string_view text);

// One operation as one JSON object, without a newline. Every field is written (null where
// unused), so the output parses back to an equal Operation. Returns InvalidArgument when a key
// or value is not valid UTF-8, which JSON strings cannot carry.
Result<std::string> OperationToJson(const Operation& op);

// The whole history, one line per operation, each ending with '\n'.
Result<std::string> WriteHistoryJsonl(const History& history);

}  // namespace synod::check
