// A small client of the nodes' admin HTTP port, shared by `synod start --join`, `synod status`,
// `synod member` and `synod up`.
//
// Thread-safety: functions; each call opens its own connection.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace synod::cli {

struct AdminReply {
  int status = 0;
  std::string body;
  nlohmann::json json;  // null when the body is not JSON
};

// GET or POST `path` (with its query string) on the admin address "host:port". Fails with
// kUnavailable when the node cannot be reached within timeout_ms (the message says whether the
// connection was refused or timed out). When follow_leader is set and the node answers 421
// with a leader_admin address, retries there (at most 5 hops).
Result<AdminReply> AdminCall(const std::string& method, const std::string& address,
                             const std::string& path, int64_t timeout_ms = 2000,
                             bool follow_leader = false);

// Percent-encodes a query parameter value.
std::string UrlEncode(const std::string& s);

}  // namespace synod::cli
