// Test helpers for the Redis command executor (redis*.cc), shared by the kv tests and the
// kv fuzzer (fuzz/kv_fuzz.cc). Header-only: the fuzzer builds without the test libraries.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "kv/command.h"

namespace synod::kv::testing {

// How ShowReply writes a bulk string: between `bulk_open` and `bulk_close`, cut to `bulk_max`
// bytes.
struct ShowStyle {
  std::string_view bulk_open = "\"";
  std::string_view bulk_close = "\"";
  size_t bulk_max = std::string::npos;
};

// A reply as one line, in the spirit of redis-cli, so a test states the exact shape:
// +status, -error, :integer, "bulk", (nil), (nil-array), [array], {map}, ,double.
inline std::string ShowReply(const Reply& r, const ShowStyle& style = {}) {
  auto list = [&style](const std::vector<Reply>& items, const char* open, const char* close) {
    std::string s = open;
    for (size_t i = 0; i < items.size(); ++i) {
      s += (i == 0 ? "" : " ") + ShowReply(items[i], style);
    }
    return s + close;
  };
  switch (r.type) {
    case ReplyType::kStatus:
      return "+" + r.value.value_or("?");
    case ReplyType::kError:
      return "-" + r.value.value_or("?");
    case ReplyType::kInteger:
      return ":" + std::to_string(r.number);
    case ReplyType::kBulk:
      return std::string(style.bulk_open) + r.value.value_or("?").substr(0, style.bulk_max) +
             std::string(style.bulk_close);
    case ReplyType::kNull:
      return "(nil)";
    case ReplyType::kNullArray:
      return "(nil-array)";
    case ReplyType::kArray:
      return list(r.replies, "[", "]");
    case ReplyType::kMap:
      return list(r.replies, "{", "}");
    case ReplyType::kDouble:
      return "," + r.value.value_or("?");
    case ReplyType::kBool:
      return r.number != 0 ? "#t" : "#f";
    case ReplyType::kSet:
      return list(r.replies, "~[", "]");
    case ReplyType::kBigNumber:
      return "(" + r.value.value_or("?");
    case ReplyType::kVerbatim:
      return "=" + r.value.value_or("?");
    case ReplyType::kNone:
      break;
  }
  return "(none)";
}

}  // namespace synod::kv::testing
