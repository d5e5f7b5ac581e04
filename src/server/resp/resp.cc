// ReplyWriter: Redis's addReply* family (networking.c) for RESP2 and RESP3.
#include "server/resp/resp.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "common/assert.h"

namespace synod::resp {
namespace {

// Formats a finite double as Redis 7.2 does: the shortest digits that read back as the same
// double, laid out as printf's "%.17g" would (scientific when the exponent is below -4 or at
// least 17). Returns the length written. REQUIRES: buf holds 32 bytes; v is finite.
size_t FormatDouble(double v, char* buf) {
  constexpr size_t kBufBytes = 32;
  const auto sci = std::to_chars(buf, buf + kBufBytes, v, std::chars_format::scientific);
  SYNOD_ASSERT(sci.ec == std::errc());
  const char* e = static_cast<const char*>(std::memchr(buf, 'e', sci.ptr - buf));
  SYNOD_ASSERT(e != nullptr);
  int exponent = 0;
  const char* exp_begin = e + 1 + (e[1] == '+' ? 1 : 0);
  const auto parsed = std::from_chars(exp_begin, sci.ptr, exponent);
  SYNOD_ASSERT(parsed.ec == std::errc());
  if (exponent < -4 || exponent >= 17) return static_cast<size_t>(sci.ptr - buf);
  const auto fixed = std::to_chars(buf, buf + kBufBytes, v, std::chars_format::fixed);
  SYNOD_ASSERT(fixed.ec == std::errc());
  return static_cast<size_t>(fixed.ptr - buf);
}

}  // namespace

bool IsBigNumber(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

ReplyWriter::ReplyWriter(std::string* out, int protocol) : out_(out), protocol_(protocol) {
  SYNOD_ASSERT(out != nullptr);
  SYNOD_ASSERT(protocol == 2 || protocol == 3);
}

void ReplyWriter::SetProtocol(int protocol) {
  SYNOD_ASSERT(protocol == 2 || protocol == 3);
  protocol_ = protocol;
}

void ReplyWriter::Line(char type, std::string_view s) {
  out_->push_back(type);
  out_->append(s);
  out_->append("\r\n");
}

void ReplyWriter::Number(char type, uint64_t n) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof(digits), n);
  SYNOD_ASSERT(r.ec == std::errc());
  Line(type, std::string_view(digits, r.ptr - digits));
}

void ReplyWriter::SanitizedLine(char type, std::string_view s) {
  const size_t start = out_->size();
  Line(type, s);
  // Redis turns line breaks inside status and error texts into spaces (addReplyErrorLength),
  // since they would end the reply early and desynchronise the client.
  const size_t end = out_->size() - 2;
  for (size_t i = start + 1; i < end; ++i) {
    char& c = (*out_)[i];
    if (c == '\r' || c == '\n') c = ' ';
  }
}

void ReplyWriter::SimpleString(std::string_view s) { SanitizedLine('+', s); }

void ReplyWriter::Error(std::string_view s) { SanitizedLine('-', s); }

void ReplyWriter::Integer(int64_t v) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof(digits), v);
  SYNOD_ASSERT(r.ec == std::errc());
  Line(':', std::string_view(digits, r.ptr - digits));
}

void ReplyWriter::Bulk(std::string_view s) {
  Number('$', s.size());
  out_->append(s);
  out_->append("\r\n");
}

void ReplyWriter::Null() { out_->append(protocol_ == 3 ? "_\r\n" : "$-1\r\n"); }

void ReplyWriter::NullArray() { out_->append(protocol_ == 3 ? "_\r\n" : "*-1\r\n"); }

void ReplyWriter::ArrayHeader(size_t n) { Number('*', n); }

void ReplyWriter::MapHeader(size_t pairs) {
  if (protocol_ == 3) {
    Number('%', pairs);
  } else {
    Number('*', uint64_t{2} * pairs);
  }
}

void ReplyWriter::SetHeader(size_t n) { Number(protocol_ == 3 ? '~' : '*', n); }

void ReplyWriter::PushHeader(size_t n) { Number(protocol_ == 3 ? '>' : '*', n); }

void ReplyWriter::DoubleText(std::string_view text) {
  if (protocol_ == 3) {
    SanitizedLine(',', text);
  } else {
    Bulk(text);
  }
}

void ReplyWriter::Double(double v) {
  char buf[32];
  std::string_view text;
  // Spelled out rather than left to the formatter so every platform says the same thing.
  if (std::isinf(v)) {
    text = v > 0 ? "inf" : "-inf";
  } else if (std::isnan(v)) {
    text = "nan";
  } else {
    text = std::string_view(buf, FormatDouble(v, buf));
  }
  if (protocol_ == 3) {
    Line(',', text);
  } else {
    Bulk(text);
  }
}

void ReplyWriter::Boolean(bool v) {
  if (protocol_ == 3) {
    out_->append(v ? "#t\r\n" : "#f\r\n");
  } else {
    out_->append(v ? ":1\r\n" : ":0\r\n");
  }
}

void ReplyWriter::Verbatim(std::string_view s, std::string_view fmt) {
  SYNOD_ASSERT(fmt.size() == 3);
  if (protocol_ == 2) {
    Bulk(s);
    return;
  }
  Number('=', s.size() + 4);
  out_->append(fmt);
  out_->push_back(':');
  out_->append(s);
  out_->append("\r\n");
}

void ReplyWriter::BigNumber(std::string_view digits) {
  SYNOD_ASSERT(IsBigNumber(digits));
  if (protocol_ == 3) {
    Line('(', digits);
  } else {
    Bulk(digits);
  }
}

}  // namespace synod::resp
