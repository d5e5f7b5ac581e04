// ReplyParser: RESP2/RESP3 replies into ReplyValue trees, with an explicit stack of open
// aggregates instead of recursion so that a hostile reply cannot exhaust the call stack.
#include <algorithm>
#include <bit>
#include <charconv>
#include <limits>
#include <utility>

#include "common/assert.h"
#include "server/resp/resp.h"

namespace synod::resp {
namespace {

using internal::InputBuffer;

// At most this many element slots are reserved from a claimed aggregate length.
constexpr uint64_t kReserveElementsMax = 1024;

bool ParseDouble(std::string_view s, double* out) {
  if (s == "inf" || s == "+inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

bool ReplyValue::Equals(const ReplyValue& other) const {
  // Iterative so that comparing deep trees cannot overflow the stack. Every node is visited
  // once, which bounds the loop.
  std::vector<std::pair<const ReplyValue*, const ReplyValue*>> todo = {{this, &other}};
  while (!todo.empty()) {
    const auto [a, b] = todo.back();
    todo.pop_back();
    if (a->type != b->type || a->str != b->str || a->format != b->format ||
        a->integer != b->integer ||
        std::bit_cast<uint64_t>(a->dbl) != std::bit_cast<uint64_t>(b->dbl) ||
        a->elements.size() != b->elements.size()) {
      return false;
    }
    for (size_t i = 0; i < a->elements.size(); ++i) {
      todo.emplace_back(&a->elements[i], &b->elements[i]);
    }
  }
  return true;
}

ReplyParser::ReplyParser(ReplyLimits limits) : limits_(limits) {
  SYNOD_ASSERT(limits_.depth_max > 0);
}

void ReplyParser::Feed(std::string_view bytes) {
  if (failed_) return;
  in_.Append(bytes);
}

ReplyParser::State ReplyParser::Next(ReplyValue* value) {
  SYNOD_ASSERT(value != nullptr);
  if (failed_) return State::kError;
  // Every kProgress step consumes at least one buffered byte, which bounds the loop.
  const size_t steps_max = in_.size() + 1;
  for (size_t step = 0; step < steps_max; ++step) {
    switch (ParseOne(value)) {
      case Step::kProgress:
        continue;
      case Step::kValue:
        return State::kValue;
      case Step::kNeedMore:
        return State::kNeedMore;
      case Step::kError:
        return State::kError;
    }
  }
  SYNOD_UNREACHABLE();
}

ReplyParser::Step ReplyParser::ParseOne(ReplyValue* value) {
  if (in_.empty()) return Step::kNeedMore;
  const size_t cr = in_.Find('\r');
  // Counted the same whether or not the \r has arrived, so splits do not change the outcome.
  const size_t line_bytes = cr == InputBuffer::npos ? in_.size() : cr;
  if (line_bytes > limits_.line_bytes_max) return Fail("Protocol error: too long line");
  if (cr == InputBuffer::npos) return Step::kNeedMore;
  if (cr + 1 >= in_.size()) return Step::kNeedMore;
  const std::string_view data = in_.Unconsumed();
  if (data[cr + 1] != '\n') return Fail("Protocol error: expected CRLF");
  const char type = data[0];
  const std::string_view line = data.substr(1, cr - 1);
  switch (type) {
    case '+':
    case '-':
    case ':':
    case '_':
    case ',':
    case '#':
    case '(':
      return ParseLine(type, line, value);
    case '$':
    case '!':
    case '=':
      return ParseBlob(type, line, value);
    case '*':
    case '%':
    case '~':
    case '>':
    case '|':
      return ParseAggregate(type, line, value);
    default:
      return Fail("Protocol error: unknown reply type");
  }
}

ReplyParser::Step ReplyParser::ParseLine(char type, std::string_view line, ReplyValue* value) {
  ReplyValue v;
  bool ok = true;
  switch (type) {
    case '+':
      v.type = ReplyValue::Type::kSimpleString;
      v.str = line;
      break;
    case '-':
      v.type = ReplyValue::Type::kError;
      v.str = line;
      break;
    case ':':
      v.type = ReplyValue::Type::kInteger;
      ok = internal::ParseInt64(line, &v.integer);
      break;
    case '_':
      v.type = ReplyValue::Type::kNull;
      ok = line.empty();
      break;
    case ',':
      v.type = ReplyValue::Type::kDouble;
      ok = ParseDouble(line, &v.dbl);
      break;
    case '#':
      v.type = ReplyValue::Type::kBoolean;
      ok = line == "t" || line == "f";
      v.integer = line == "t" ? 1 : 0;
      break;
    default:
      SYNOD_ASSERT(type == '(');
      v.type = ReplyValue::Type::kBigNumber;
      ok = IsBigNumber(line);
      v.str = line;
      break;
  }
  if (!ok) return Fail("Protocol error: invalid value");
  in_.Consume(line.size() + 3);  // type byte, line, \r\n
  return Attach(std::move(v), value);
}

ReplyParser::Step ReplyParser::ParseBlob(char type, std::string_view line, ReplyValue* value) {
  const size_t header_bytes = line.size() + 3;
  int64_t len = 0;
  if (!internal::ParseInt64(line, &len)) return Fail("Protocol error: invalid bulk length");
  if (len == -1 && type == '$') {  // RESP2 null bulk
    in_.Consume(header_bytes);
    return Attach(ReplyValue{}, value);
  }
  if (len < 0 || static_cast<uint64_t>(len) > limits_.bulk_bytes_max) {
    return Fail("Protocol error: invalid bulk length");
  }
  const size_t n = static_cast<size_t>(len);
  const std::string_view data = in_.Unconsumed();
  if (data.size() > header_bytes + n && data[header_bytes + n] != '\r') {
    return Fail("Protocol error: expected CRLF after bulk data");
  }
  if (data.size() < header_bytes + n + 2) return Step::kNeedMore;
  if (data[header_bytes + n + 1] != '\n') {
    return Fail("Protocol error: expected CRLF after bulk data");
  }
  const std::string_view body = data.substr(header_bytes, n);
  ReplyValue v;
  if (type == '$') {
    v.type = ReplyValue::Type::kBulk;
    v.str = body;
  } else if (type == '!') {
    v.type = ReplyValue::Type::kError;
    v.str = body;
  } else {
    SYNOD_ASSERT(type == '=');
    if (body.size() < 4 || body[3] != ':') return Fail("Protocol error: invalid verbatim string");
    v.type = ReplyValue::Type::kVerbatim;
    v.format = body.substr(0, 3);
    v.str = body.substr(4);
  }
  in_.Consume(header_bytes + n + 2);
  return Attach(std::move(v), value);
}

ReplyParser::Step ReplyParser::ParseAggregate(char type, std::string_view line, ReplyValue* value) {
  const size_t header_bytes = line.size() + 3;
  int64_t n = 0;
  if (!internal::ParseInt64(line, &n)) return Fail("Protocol error: invalid aggregate length");
  if (n == -1 && type == '*') {  // RESP2 null array
    in_.Consume(header_bytes);
    return Attach(ReplyValue{}, value);
  }
  if (n < 0 || static_cast<uint64_t>(n) > limits_.elements_max) {
    return Fail("Protocol error: invalid aggregate length");
  }
  const bool pairs = type == '%' || type == '|';
  // n < 2^63, so doubling it cannot overflow 64 bits.
  const uint64_t count = static_cast<uint64_t>(n) * (pairs ? 2 : 1);
  in_.Consume(header_bytes);
  ReplyValue v;
  switch (type) {
    case '*':
      v.type = ReplyValue::Type::kArray;
      break;
    case '%':
    case '|':
      v.type = ReplyValue::Type::kMap;
      break;
    case '~':
      v.type = ReplyValue::Type::kSet;
      break;
    default:
      SYNOD_ASSERT(type == '>');
      v.type = ReplyValue::Type::kPush;
      break;
  }
  const bool attribute = type == '|';
  if (count == 0) return attribute ? Step::kProgress : Attach(std::move(v), value);
  if (stack_.size() >= limits_.depth_max) return Fail("Protocol error: reply nested too deep");
  v.elements.reserve(static_cast<size_t>(std::min(count, kReserveElementsMax)));
  stack_.push_back(Frame{std::move(v), count, attribute});
  return Step::kProgress;
}

ReplyParser::Step ReplyParser::Attach(ReplyValue v, ReplyValue* top_level) {
  // Completing one value may complete its parents: at most one pass per open aggregate.
  const size_t passes_max = stack_.size() + 1;
  for (size_t pass = 0; pass < passes_max; ++pass) {
    if (stack_.empty()) {
      *top_level = std::move(v);
      return Step::kValue;
    }
    Frame& top = stack_.back();
    SYNOD_ASSERT(top.remaining > 0);
    top.value.elements.push_back(std::move(v));
    if (--top.remaining > 0) return Step::kProgress;
    Frame done = std::move(top);
    stack_.pop_back();
    // An attribute describes the value that follows it; callers here have no use for it.
    if (done.attribute) return Step::kProgress;
    v = std::move(done.value);
  }
  SYNOD_UNREACHABLE();
}

ReplyParser::Step ReplyParser::Fail(std::string_view text) {
  failed_ = true;
  error_ = text;
  stack_.clear();
  in_.Consume(in_.size());
  return Step::kError;
}

}  // namespace synod::resp
