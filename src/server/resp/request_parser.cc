// RequestParser: Redis's processMultibulkBuffer and processInlineBuffer (networking.c), made
// incremental and bounded. Differences from Redis, all stricter: the byte after a header's
// \r must be \n, and the two bytes after bulk data must be \r\n (Redis skips them unchecked).
#include <algorithm>

#include "common/assert.h"
#include "server/resp/resp.h"

namespace synod::resp {
namespace {

using internal::InputBuffer;

// A bulk this long is read straight into its argument (Redis's PROTO_MBULK_BIG_ARG).
constexpr uint64_t kBigArgBytes = 32 * 1024;
// At most this much is reserved for a bulk before its bytes arrive.
constexpr uint64_t kReserveAheadBytes = 1 << 20;
// At most this many argument slots are reserved from a claimed `*<n>` (as Redis).
constexpr uint64_t kReserveArgsMax = 1024;

bool IsSpace(char c) {  // isspace() in the C locale, as sdssplitargs uses it
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

char Unescape(char c) {
  switch (c) {
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case 'b':
      return '\b';
    case 'a':
      return '\a';
    default:
      return c;
  }
}

// Reads one token of sdssplitargs starting at line[*i] (not a blank), leaving *i after it.
// Returns false on unbalanced quotes. Past the end the line reads as '\0', as a C string does.
bool ReadToken(std::string_view line, size_t* i, std::string* token) {
  const size_t n = line.size();
  auto at = [&](size_t k) { return k < n ? line[k] : '\0'; };
  bool in_double = false;
  bool in_single = false;
  // Every pass advances *i; at *i == n the byte reads '\0' and every branch returns.
  for (; *i <= n; ++*i) {
    const char c = at(*i);
    if (in_double) {
      if (c == '\\' && at(*i + 1) == 'x' && IsHex(at(*i + 2)) && IsHex(at(*i + 3))) {
        token->push_back(static_cast<char>(HexValue(at(*i + 2)) * 16 + HexValue(at(*i + 3))));
        *i += 3;
      } else if (c == '\\' && at(*i + 1) != '\0') {
        ++*i;
        token->push_back(Unescape(at(*i)));
      } else if (c == '"') {
        // A closing quote must be followed by a blank or the end of the line.
        if (at(*i + 1) != '\0' && !IsSpace(at(*i + 1))) return false;
        ++*i;
        return true;
      } else if (c == '\0') {
        return false;
      } else {
        token->push_back(c);
      }
    } else if (in_single) {
      if (c == '\\' && at(*i + 1) == '\'') {
        ++*i;
        token->push_back('\'');
      } else if (c == '\'') {
        if (at(*i + 1) != '\0' && !IsSpace(at(*i + 1))) return false;
        ++*i;
        return true;
      } else if (c == '\0') {
        return false;
      } else {
        token->push_back(c);
      }
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0') {
      if (c != '\0') ++*i;
      return true;
    } else if (c == '"') {
      in_double = true;
    } else if (c == '\'') {
      in_single = true;
    } else {
      token->push_back(c);
    }
  }
  SYNOD_UNREACHABLE();
}

// Splits an inline command line like Redis's sdssplitargs. Returns false on unbalanced quotes.
bool SplitArgs(std::string_view line, std::vector<std::string>* args) {
  // sdssplitargs reads a C string: whatever follows a NUL byte is ignored.
  line = line.substr(0, line.find('\0'));
  size_t i = 0;
  while (i < line.size()) {  // bounded: every pass consumes at least one byte
    const size_t before = i;
    while (i < line.size() && IsSpace(line[i])) ++i;
    if (i == line.size()) break;
    std::string token;
    if (!ReadToken(line, &i, &token)) return false;
    args->push_back(std::move(token));
    SYNOD_ASSERT(i > before);
  }
  return true;
}

}  // namespace

RequestParser::RequestParser(Limits limits) : limits_(limits) {}

void RequestParser::Feed(std::string_view bytes) {
  if (state_ == State::kError) return;
  if (phase_ == Phase::kBulkData && big_arg_ && in_.empty()) {
    // The one copy of a big bulk: from the caller's bytes into the argument itself.
    std::string& arg = argv_.back();
    const size_t take =
        static_cast<size_t>(std::min<uint64_t>(bytes.size(), bulk_len_ - arg.size()));
    internal::AppendBounded(&arg, bulk_len_, bytes.substr(0, take));
    args_bytes_ += take;
    bytes.remove_prefix(take);
  }
  in_.Append(bytes);
}

RequestParser::State RequestParser::Next(std::vector<std::string>* argv) {
  SYNOD_ASSERT(argv != nullptr);
  if (state_ == State::kError) return State::kError;
  // Every kProgress step consumes at least one buffered byte, which bounds the loop.
  const size_t steps_max = in_.size() + 1;
  for (size_t step = 0; step < steps_max; ++step) {
    Step s = Step::kNeedMore;
    switch (phase_) {
      case Phase::kStart:
        s = ParseStart();
        break;
      case Phase::kBulkHeader:
        s = ParseBulkHeader();
        break;
      case Phase::kBulkData:
        s = big_arg_ ? ParseBigBulkData() : ParseBulkData();
        break;
    }
    switch (s) {
      case Step::kProgress:
        continue;
      case Step::kCommand:
        SYNOD_ASSERT(!argv_.empty());
        *argv = std::move(argv_);
        argv_.clear();
        args_bytes_ = 0;
        return State::kCommand;
      case Step::kNeedMore:
        return State::kNeedMore;
      case Step::kError:
        return State::kError;
    }
  }
  SYNOD_UNREACHABLE();
}

size_t RequestParser::capacity_bytes() const {
  // Short strings live inside the std::string object, already counted by the vector.
  const size_t inline_capacity = std::string().capacity();
  size_t total = in_.capacity() + argv_.capacity() * sizeof(std::string);
  for (const std::string& arg : argv_) {  // at most args_max
    if (arg.capacity() > inline_capacity) total += arg.capacity();
  }
  return total;
}

RequestParser::Step RequestParser::ParseStart() {
  if (in_.empty()) return Step::kNeedMore;
  return in_.Unconsumed()[0] == '*' ? ParseMultibulkHeader() : ParseInline();
}

RequestParser::Step RequestParser::ParseInline() {
  const size_t nl = in_.Find('\n');
  // Redis bounds only a line still waiting for its \n; a complete line is bounded too, so
  // that the outcome does not depend on how the input was split.
  const size_t line_bytes = nl == InputBuffer::npos ? in_.size() : nl;
  if (line_bytes > limits_.inline_bytes_max) {
    return Fail("ERR Protocol error: too big inline request");
  }
  if (nl == InputBuffer::npos) return Step::kNeedMore;
  std::string_view line = in_.Unconsumed().substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<std::string> args;
  if (!SplitArgs(line, &args)) {
    return Fail("ERR Protocol error: unbalanced quotes in request");
  }
  in_.Consume(nl + 1);
  if (args.empty()) return Step::kProgress;  // a blank line is skipped
  argv_ = std::move(args);
  return Step::kCommand;
}

RequestParser::Step RequestParser::ParseMultibulkHeader() {
  const size_t cr = in_.Find('\r');
  // Bytes before the \r, counted the same whether or not it has arrived, so that the outcome
  // does not depend on how the input was split.
  const size_t line_bytes = cr == InputBuffer::npos ? in_.size() : cr;
  if (line_bytes > limits_.inline_bytes_max) {
    return Fail("ERR Protocol error: too big mbulk count string");
  }
  if (cr == InputBuffer::npos) return Step::kNeedMore;
  if (cr + 1 >= in_.size()) return Step::kNeedMore;  // the \n has not arrived
  const std::string_view data = in_.Unconsumed();
  int64_t n = 0;
  if (data[cr + 1] != '\n' || !internal::ParseInt64(data.substr(1, cr - 1), &n) ||
      (n > 0 && static_cast<uint64_t>(n) > limits_.args_max)) {
    return Fail("ERR Protocol error: invalid multibulk length");
  }
  in_.Consume(cr + 2);
  if (n <= 0) return Step::kProgress;  // `*0` and `*-1` are empty commands, skipped
  args_expected_ = static_cast<uint64_t>(n);
  argv_.clear();
  argv_.reserve(static_cast<size_t>(std::min(args_expected_, kReserveArgsMax)));
  phase_ = Phase::kBulkHeader;
  return Step::kProgress;
}

RequestParser::Step RequestParser::ParseBulkHeader() {
  if (in_.empty()) return Step::kNeedMore;
  if (in_.Unconsumed()[0] != '$') {
    std::string text = "ERR Protocol error: expected '$', got ' '";
    text[text.size() - 2] = in_.Unconsumed()[0];
    return Fail(text);
  }
  const size_t cr = in_.Find('\r');
  // Bytes before the \r, counted the same whether or not it has arrived, so that the outcome
  // does not depend on how the input was split.
  const size_t line_bytes = cr == InputBuffer::npos ? in_.size() : cr;
  if (line_bytes > limits_.inline_bytes_max) {
    return Fail("ERR Protocol error: too big bulk count string");
  }
  if (cr == InputBuffer::npos) return Step::kNeedMore;
  if (cr + 1 >= in_.size()) return Step::kNeedMore;
  const std::string_view data = in_.Unconsumed();
  int64_t len = 0;
  if (data[cr + 1] != '\n' || !internal::ParseInt64(data.substr(1, cr - 1), &len) || len < 0 ||
      static_cast<uint64_t>(len) > limits_.bulk_bytes_max) {
    return Fail("ERR Protocol error: invalid bulk length");
  }
  in_.Consume(cr + 2);
  bulk_len_ = static_cast<uint64_t>(len);
  phase_ = Phase::kBulkData;
  big_arg_ = bulk_len_ >= kBigArgBytes;
  if (big_arg_) {
    argv_.emplace_back();
    argv_.back().reserve(static_cast<size_t>(std::min(bulk_len_, kReserveAheadBytes)));
  }
  return Step::kProgress;
}

RequestParser::Step RequestParser::ParseBulkData() {
  const std::string_view data = in_.Unconsumed();
  // Check the terminator as soon as its bytes are here rather than after the whole bulk.
  if (data.size() > bulk_len_ && data[bulk_len_] != '\r') {
    return Fail("ERR Protocol error: expected CRLF after bulk data");
  }
  if (data.size() < bulk_len_ + 2) return Step::kNeedMore;
  if (data[bulk_len_ + 1] != '\n') {
    return Fail("ERR Protocol error: expected CRLF after bulk data");
  }
  argv_.emplace_back(data.substr(0, bulk_len_));
  args_bytes_ += bulk_len_;
  in_.Consume(bulk_len_ + 2);
  return FinishArgument();
}

RequestParser::Step RequestParser::ParseBigBulkData() {
  std::string& arg = argv_.back();
  SYNOD_ASSERT(arg.size() <= bulk_len_);
  if (arg.size() < bulk_len_) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(in_.size(), bulk_len_ - arg.size()));
    internal::AppendBounded(&arg, bulk_len_, in_.Unconsumed().substr(0, take));
    args_bytes_ += take;
    in_.Consume(take);
    if (arg.size() < bulk_len_) return Step::kNeedMore;
  }
  const std::string_view data = in_.Unconsumed();
  if (!data.empty() && data[0] != '\r') {
    return Fail("ERR Protocol error: expected CRLF after bulk data");
  }
  if (data.size() < 2) return Step::kNeedMore;
  if (data[1] != '\n') return Fail("ERR Protocol error: expected CRLF after bulk data");
  in_.Consume(2);
  return FinishArgument();
}

RequestParser::Step RequestParser::FinishArgument() {
  big_arg_ = false;
  bulk_len_ = 0;
  if (argv_.size() == args_expected_) {
    phase_ = Phase::kStart;
    return Step::kCommand;
  }
  phase_ = Phase::kBulkHeader;
  return Step::kProgress;
}

RequestParser::Step RequestParser::Fail(std::string_view text) {
  state_ = State::kError;
  error_ = text;
  // Nothing more will be parsed: release what the client made us hold.
  argv_ = {};
  args_bytes_ = 0;
  in_.Consume(in_.size());
  return Step::kError;
}

}  // namespace synod::resp
