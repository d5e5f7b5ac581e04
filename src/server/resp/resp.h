// The RESP codec: Redis's wire protocol, as clients see it (redis-cli, redis-benchmark and
// every client library must work unchanged). Redis's own networking.c is the specification:
// error texts, inline splitting and limits follow it byte for byte unless noted.
//
//   RequestParser  bytes from a client -> commands (argv), incremental, bounded memory.
//   ReplyWriter    replies -> bytes, RESP2 or RESP3 (a connection switches with HELLO).
//   ReplyParser    reply bytes -> ReplyValue trees, for tests and our own client tools.
//
// Nothing here does I/O or owns a socket; the connection layer feeds bytes in and sends the
// bytes out. None of these classes is thread-safe: each belongs to one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/resp/input_buffer.h"

namespace synod::resp {

// Bounds on what one client may make the request parser hold.
struct Limits {
  // The longest bulk argument accepted (Redis's proto-max-bulk-len). Longer claims are a
  // protocol error before any byte of the bulk is read.
  uint64_t bulk_bytes_max = 512ull << 20;
  // The most arguments in one command (Redis's multibulk length limit).
  uint64_t args_max = 1024 * 1024;
  // The longest inline command line (the bytes before its \n, a \r included) and the longest
  // `*<n>` / `$<n>` header line (the bytes before its \r), Redis's PROTO_INLINE_MAX_SIZE.
  // Redis applies it only while a line waits for its end; here it also applies to complete
  // lines, so that the outcome never depends on how the bytes were split.
  uint64_t inline_bytes_max = 64 * 1024;
};

// Parses the requests of one client connection, incrementally: the connection feeds whatever
// bytes arrived, then calls Next until it stops returning kCommand. Both forms Redis accepts
// are parsed: multibulk (`*<n>\r\n` then n times `$<len>\r\n<bytes>\r\n`) and inline (a line
// split like redis-cli input). The cost is linear in the bytes fed however they are split.
//
// Memory: a bulk of 32 KiB or more is written straight into its argument as bytes arrive
// (copied once from the fed bytes), except for the part that came in the same Feed as its
// header. Memory for a bulk grows with the bytes received, never with the length a client
// claims, beyond 1 MiB reserved ahead. Callers should therefore call Next after every Feed.
//
// Thread-safety: none; one parser per connection, used by one thread at a time.
class RequestParser {
 public:
  explicit RequestParser(Limits limits = {});

  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Hands the parser bytes received from the client. Bytes fed after an error are dropped.
  void Feed(std::string_view bytes);

  enum class State {
    kCommand,   // *argv holds the next command (never empty)
    kNeedMore,  // no complete command is buffered; feed more bytes
    kError,     // protocol error; sticky: the connection must reply error() and close
  };

  // Parses the next complete command into *argv, replacing its contents. Empty commands
  // (`*0`, `*-1`, blank inline lines) are skipped as Redis does. On kNeedMore and kError
  // *argv is left unchanged.
  State Next(std::vector<std::string>* argv);

  // The error to send (without the leading '-'), e.g. "ERR Protocol error: invalid bulk
  // length". Empty unless Next returned kError. May hold any byte the client sent (the
  // "got 'X'" case); ReplyWriter::Error makes it safe to send.
  const std::string& error() const { return error_; }

  // Bytes held for commands not yet returned: unparsed input plus arguments already parsed
  // of an incomplete command. The connection compares this with its input limit.
  size_t buffered_bytes() const { return in_.size() + args_bytes_; }

  // Memory held by the parser (buffer and argument capacities), for accounting and tests.
  size_t capacity_bytes() const;

 private:
  enum class Phase {
    kStart,       // at the start of a command
    kBulkHeader,  // expecting `$<len>\r\n` of argument argv_.size()
    kBulkData,    // expecting bulk_len_ bytes and \r\n
  };
  enum class Step { kProgress, kCommand, kNeedMore, kError };

  Step ParseStart();
  Step ParseInline();
  Step ParseMultibulkHeader();
  Step ParseBulkHeader();
  Step ParseBulkData();
  Step ParseBigBulkData();
  Step FinishArgument();
  Step Fail(std::string_view text);

  const Limits limits_;
  internal::InputBuffer in_;
  State state_ = State::kNeedMore;  // only kError is meaningful: it makes Next sticky
  std::string error_;

  Phase phase_ = Phase::kStart;
  std::vector<std::string> argv_;  // arguments of the command being parsed
  uint64_t args_expected_ = 0;     // its argument count, from `*<n>`
  uint64_t bulk_len_ = 0;          // length of the bulk being read, from `$<len>`
  bool big_arg_ = false;           // the bulk is read straight into argv_.back()
  size_t args_bytes_ = 0;          // bytes in argv_
};

// Appends replies to a string in RESP2 or RESP3. In RESP2 the RESP3-only types degrade as
// Redis degrades them (a map becomes a flat array, a double a bulk string, ...).
//
// Thread-safety: none; one writer per connection. The string is owned by the caller and must
// outlive the writer.
class ReplyWriter {
 public:
  // REQUIRES: out != nullptr; protocol is 2 or 3.
  explicit ReplyWriter(std::string* out, int protocol = 2);

  // Switches the protocol for the replies that follow (HELLO). REQUIRES: 2 or 3.
  void SetProtocol(int protocol);
  int protocol() const { return protocol_; }

  // `+s`. A \r or \n in s would end the reply early, so each becomes a space.
  void SimpleString(std::string_view s);
  // `-s`; s starts with the error code, e.g. "ERR unknown command". \r and \n become spaces.
  void Error(std::string_view s);
  void Integer(int64_t v);        // :v
  void Bulk(std::string_view s);  // $len, bytes
  void Null();                    // RESP2 $-1, RESP3 _
  void NullArray();               // RESP2 *-1, RESP3 _
  void ArrayHeader(size_t n);     // *n, then n replies
  void MapHeader(size_t pairs);   // RESP3 %pairs, RESP2 *2pairs; then 2*pairs
  void SetHeader(size_t n);       // RESP3 ~n, RESP2 *n; then n replies
  void PushHeader(size_t n);      // RESP3 >n, RESP2 *n (pub/sub messages)
  void Double(double v);          // RESP3 ,v; RESP2 bulk; inf/-inf/nan as Redis
  void Boolean(bool v);           // RESP3 #t/#f, RESP2 :1/:0
  // A double already formatted (INCRBYFLOAT's text): RESP3 `,text`, RESP2 a bulk string.
  void DoubleText(std::string_view text);
  // RESP3 `=`, RESP2 bulk of s alone. REQUIRES: fmt is 3 bytes ("txt", "mkd").
  void Verbatim(std::string_view s, std::string_view fmt = "txt");
  // RESP3 `(digits`, RESP2 bulk. REQUIRES: digits is an optional '-' and decimal digits.
  void BigNumber(std::string_view digits);

 private:
  void Line(char type, std::string_view s);  // type, s, \r\n
  void Number(char type, uint64_t n);        // type, decimal n, \r\n
  void SanitizedLine(char type, std::string_view s);

  std::string* const out_;
  int protocol_;
};

// True when s is an optional '-' followed by one or more decimal digits (a RESP3 big number).
bool IsBigNumber(std::string_view s);

// One parsed reply. Which fields are set depends on type; the others stay empty/zero.
//
// Thread-safety: a value.
struct ReplyValue {
  enum class Type {
    kSimpleString,  // str
    kError,         // str: simple (-) and blob (!) errors alike
    kInteger,       // integer
    kBulk,          // str
    kNull,          // $-1, *-1 and RESP3 _
    kArray,         // elements
    kMap,           // elements: key, value, key, value...
    kSet,           // elements
    kPush,          // elements
    kDouble,        // dbl
    kBoolean,       // integer: 1 or 0
    kVerbatim,      // str (without the format), format ("txt")
    kBigNumber,     // str (the digits)
  };

  Type type = Type::kNull;
  std::string str;
  std::string format;
  int64_t integer = 0;
  double dbl = 0;
  std::vector<ReplyValue> elements;

  // Deep equality (iterative; doubles equal when bit-for-bit equal, so NaN equals NaN).
  bool Equals(const ReplyValue& other) const;
};

// Bounds on what a server may make the reply parser hold.
struct ReplyLimits {
  uint64_t bulk_bytes_max = 512ull << 20;
  uint64_t elements_max = 1ull << 32;   // per aggregate; counts are only reserved up to 1024
  size_t depth_max = 64;                // nested aggregates; deeper replies are an error
  uint64_t line_bytes_max = 64 * 1024;  // a simple string, error, number or header line
};

// Parses RESP2 and RESP3 replies, incrementally like RequestParser. Attributes (`|`) are
// parsed and dropped. Streamed strings and aggregates (`$?`, `*?`) are not supported.
//
// Thread-safety: none; one parser per connection.
class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {});

  ReplyParser(const ReplyParser&) = delete;
  ReplyParser& operator=(const ReplyParser&) = delete;

  // Bytes fed after an error are dropped.
  void Feed(std::string_view bytes);

  enum class State { kValue, kNeedMore, kError };
  // Parses the next complete top-level reply into *value (replaced). kError is sticky.
  State Next(ReplyValue* value);
  const std::string& error() const { return error_; }
  size_t buffered_bytes() const { return in_.size(); }

 private:
  struct Frame {
    ReplyValue value;
    uint64_t remaining;  // elements still to come
    bool attribute;      // dropped when complete instead of joining its parent
  };
  enum class Step { kProgress, kValue, kNeedMore, kError };

  Step ParseOne(ReplyValue* value);
  Step ParseLine(char type, std::string_view line, ReplyValue* value);
  Step ParseBlob(char type, std::string_view line, ReplyValue* value);
  Step ParseAggregate(char type, std::string_view line, ReplyValue* value);
  Step Attach(ReplyValue v, ReplyValue* top_level);
  Step Fail(std::string_view text);

  const ReplyLimits limits_;
  internal::InputBuffer in_;
  std::vector<Frame> stack_;  // open aggregates, outermost first; size() <= depth_max
  bool failed_ = false;
  std::string error_;
};

}  // namespace synod::resp
