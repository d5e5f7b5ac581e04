#include "server/resp/resp.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace synod::resp {
namespace {

using std::string_literals::operator""s;

using Argv = std::vector<std::string>;

// What a parser made of some input: the commands in order, then the error if one came.
struct Outcome {
  std::vector<Argv> commands;
  bool error = false;
  std::string error_text;
  bool operator==(const Outcome&) const = default;
};

void PrintTo(const Outcome& o, std::ostream* os) {
  *os << "{";
  for (const Argv& argv : o.commands) {
    *os << "[";
    for (const std::string& a : argv) {
      *os << "\"" << (a.size() <= 64 ? a : a.substr(0, 64) + "...") << "\" ";
    }
    *os << "] ";
  }
  if (o.error) *os << "error: " << o.error_text;
  *os << "}";
}

// Drains every complete command from p into *out.
void Drain(RequestParser* p, Outcome* out) {
  for (int i = 0; i < 1'000'000; ++i) {
    Argv argv;
    switch (p->Next(&argv)) {
      case RequestParser::State::kCommand:
        out->commands.push_back(std::move(argv));
        continue;
      case RequestParser::State::kNeedMore:
        return;
      case RequestParser::State::kError:
        out->error = true;
        out->error_text = p->error();
        return;
    }
  }
  FAIL() << "parser did not stop";
}

// Feeds `input` cut at the given offsets (ascending), draining after every piece.
Outcome ParseSplit(std::string_view input, const std::vector<size_t>& cuts, Limits limits = {}) {
  RequestParser p(limits);
  Outcome out;
  size_t from = 0;
  for (size_t cut : cuts) {
    p.Feed(input.substr(from, cut - from));
    Drain(&p, &out);
    from = cut;
  }
  p.Feed(input.substr(from));
  Drain(&p, &out);
  return out;
}

Outcome ParseWhole(std::string_view input, Limits limits = {}) {
  return ParseSplit(input, {}, limits);
}

// Parses input whole, a byte at a time, cut once at every offset, and in random chunks, and
// checks that every way gives `expected`.
void ExpectAllSplits(std::string_view input, const Outcome& expected, Limits limits = {}) {
  EXPECT_EQ(ParseWhole(input, limits), expected) << "whole";
  std::vector<size_t> bytes;
  for (size_t i = 1; i < input.size(); ++i) bytes.push_back(i);
  EXPECT_EQ(ParseSplit(input, bytes, limits), expected) << "byte at a time";
  // Every cut point of small inputs; about 2000 of them for big ones (the loop is quadratic).
  const size_t stride = std::max<size_t>(1, input.size() / 2000);
  for (size_t i = 1; i < input.size(); i += stride) {
    EXPECT_EQ(ParseSplit(input, {i}, limits), expected) << "cut at " << i;
  }
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::vector<size_t> cuts;
    size_t at = 0;
    while (true) {
      at += 1 + rng() % 7;
      if (at >= input.size()) break;
      cuts.push_back(at);
    }
    EXPECT_EQ(ParseSplit(input, cuts, limits), expected) << "random round " << round;
  }
}

Outcome Commands(std::vector<Argv> commands) { return Outcome{std::move(commands), false, {}}; }

Outcome Error(std::vector<Argv> commands, std::string text) {
  return Outcome{std::move(commands), true, std::move(text)};
}

std::string Multibulk(const Argv& argv) {
  std::string out = "*" + std::to_string(argv.size()) + "\r\n";
  for (const std::string& a : argv) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// ---------------------------------------------------------------- multibulk requests

TEST(RequestParserTest, Multibulk) {
  ExpectAllSplits("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
                  Commands({{"SET", "key", "value"}}));
}

TEST(RequestParserTest, BulkMayHoldAnyByte) {
  const std::string binary("a\r\nb\0c$*\n", 9);
  ExpectAllSplits("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$9\r\n" + binary + "\r\n",
                  Commands({{"SET", "", binary}}));
}

TEST(RequestParserTest, EmptyMultibulkIsSkipped) {
  ExpectAllSplits("*0\r\n*-1\r\n*-7\r\n*1\r\n$4\r\nPING\r\n*0\r\n", Commands({{"PING"}}));
}

TEST(RequestParserTest, PipelinedMixedForms) {
  ExpectAllSplits(
      "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\r\nINCR  n\n"
      "*2\r\n$4\r\nECHO\r\n$2\r\n\r\n\r\n",
      Commands({{"PING"}, {"ECHO", "hi"}, {"GET", "k"}, {"INCR", "n"}, {"ECHO", "\r\n"}}));
}

TEST(RequestParserTest, ArgvIsReplacedNotAppended) {
  RequestParser p;
  p.Feed("*1\r\n$1\r\na\r\n");
  Argv argv = {"old", "stuff"};
  ASSERT_EQ(p.Next(&argv), RequestParser::State::kCommand);
  EXPECT_EQ(argv, Argv({"a"}));
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kNeedMore);
  EXPECT_EQ(argv, Argv({"a"}));
}

// ---------------------------------------------------------------- inline requests

TEST(RequestParserTest, InlineSplitsOnBlanks) {
  ExpectAllSplits("PING\r\nSET a b\n  GET\t\tkey  \r\n",
                  Commands({{"PING"}, {"SET", "a", "b"}, {"GET", "key"}}));
}

TEST(RequestParserTest, InlineBlankLinesAreSkipped) {
  ExpectAllSplits("\r\n\n   \r\n\t\nPING\n", Commands({{"PING"}}));
}

TEST(RequestParserTest, InlineDoubleQuotesAndEscapes) {
  ExpectAllSplits(R"(SET "a b" "\x41\x4a\n\r\t\b\a\\\"\q" "\xZZ" "")"
                  "\r\n",
                  Commands({{"SET", "a b", "AJ\n\r\t\b\a\\\"q", "xZZ", ""}}));
}

TEST(RequestParserTest, InlineSingleQuotes) {
  ExpectAllSplits(R"(SET 'it\'s' 'a\nb' '')"
                  "\n",
                  Commands({{"SET", "it's", "a\\nb", ""}}));
}

TEST(RequestParserTest, InlineQuoteMayStartInsideAToken) {
  // sdssplitargs opens a quote wherever it meets one: foo"bar baz" is one argument.
  ExpectAllSplits("ECHO foo\"bar baz\"\n", Commands({{"ECHO", "foobar baz"}}));
}

TEST(RequestParserTest, InlineHexEscapeMakesAnyByte) {
  ExpectAllSplits("ECHO \"\\x00\\xff\\xAb\"\n",
                  Commands({{"ECHO", std::string("\x00\xff\xab", 3)}}));
}

TEST(RequestParserTest, InlineStopsAtNulLikeACString) {
  ExpectAllSplits(std::string("GET a\0b c\nPING\n", 15), Commands({{"GET", "a"}, {"PING"}}));
}

TEST(RequestParserTest, InlineVerticalTabSeparatesOnlyBetweenTokens) {
  // isspace() skips \v between tokens, but only ' ', \t, \r, \n end a token.
  ExpectAllSplits("\va\vb \vc\n", Commands({{"a\vb", "c"}}));
}

TEST(RequestParserTest, InlineUnbalancedQuotes) {
  const std::string kText = "ERR Protocol error: unbalanced quotes in request";
  for (std::string line :
       {"SET \"abc\n", "SET 'abc\n", "SET \"abc\"def\n", "SET 'a'b\n", "SET \"abc\\\"\n"}) {
    SCOPED_TRACE(line);
    ExpectAllSplits("PING\n" + line + "PING\n", Error({{"PING"}}, kText));
  }
  // The NUL case: a literal string with an embedded NUL needs its length.
  ExpectAllSplits(std::string("ECHO \"a\0b\"\n", 11), Error({}, kText));
}

// ---------------------------------------------------------------- errors

TEST(RequestParserTest, InvalidMultibulkLength) {
  const std::string kText = "ERR Protocol error: invalid multibulk length";
  for (std::string bad : {"*abc\r\n", "*\r\n", "*01\r\n", "*+1\r\n", "*1 \r\n", "*-0\r\n",
                          "*1048577\r\n", "*99999999999999999999\r\n", "*1\rx"}) {
    SCOPED_TRACE(bad);
    ExpectAllSplits("PING\r\n" + bad, Error({{"PING"}}, kText));
  }
}

TEST(RequestParserTest, ArgsMaxIsInclusive) {
  Limits limits;
  limits.args_max = 3;
  ExpectAllSplits(Multibulk({"a", "b", "c"}), Commands({{"a", "b", "c"}}), limits);
  ExpectAllSplits(Multibulk({"a", "b", "c", "d"}),
                  Error({}, "ERR Protocol error: invalid multibulk length"), limits);
}

TEST(RequestParserTest, InvalidBulkLength) {
  const std::string kText = "ERR Protocol error: invalid bulk length";
  for (std::string bad : {"$abc\r\n", "$-1\r\n", "$\r\n", "$01\r\n", "$3x\r\n", "$3\rx"}) {
    SCOPED_TRACE(bad);
    ExpectAllSplits("*2\r\n$3\r\nGET\r\n" + bad, Error({}, kText));
  }
}

TEST(RequestParserTest, BulkBytesMaxIsInclusive) {
  Limits limits;
  limits.bulk_bytes_max = 10;
  ExpectAllSplits(Multibulk({"0123456789"}), Commands({{"0123456789"}}), limits);
  ExpectAllSplits(Multibulk({"0123456789A"}), Error({}, "ERR Protocol error: invalid bulk length"),
                  limits);
}

TEST(RequestParserTest, ExpectedDollar) {
  ExpectAllSplits("*1\r\nGET\r\n", Error({}, "ERR Protocol error: expected '$', got 'G'"));
  ExpectAllSplits("*2\r\n$1\r\na\r\n:1\r\n",
                  Error({}, "ERR Protocol error: expected '$', got ':'"));
}

TEST(RequestParserTest, MissingCrlfAfterBulkData) {
  const std::string kText = "ERR Protocol error: expected CRLF after bulk data";
  for (std::string bad : {"fooXY", "foo\rX", "foo\n\r", "fooo\r\n"}) {
    SCOPED_TRACE(bad);
    ExpectAllSplits("*1\r\n$3\r\n" + bad, Error({}, kText));
  }
}

TEST(RequestParserTest, TooBigInlineRequest) {
  Limits limits;
  limits.inline_bytes_max = 16;
  const std::string kText = "ERR Protocol error: too big inline request";
  const std::string sixteen(16, 'x');
  const std::string fifteen(15, 'x');
  // The bound is on the bytes before \n, \r included, since Redis counts them while waiting.
  ExpectAllSplits(sixteen + "\n" + fifteen + "\r\n", Commands({{sixteen}, {fifteen}}), limits);
  ExpectAllSplits(sixteen + "\r\n", Error({}, kText), limits);
  ExpectAllSplits(sixteen, Commands({}), limits);
  // A 17th byte without an end of line is an error; so is a 17-byte line.
  ExpectAllSplits(sixteen + "x", Error({}, kText), limits);
  ExpectAllSplits("PING\n" + sixteen + "x\n", Error({{"PING"}}, kText), limits);
}

TEST(RequestParserTest, TooBigMbulkCountString) {
  Limits limits;
  limits.inline_bytes_max = 16;
  ExpectAllSplits("*" + std::string(15, '1'), Commands({}), limits);
  ExpectAllSplits("*" + std::string(16, '1'),
                  Error({}, "ERR Protocol error: too big mbulk count string"), limits);
  // Also when the \r is already there: the outcome must not depend on how bytes arrived.
  ExpectAllSplits("*" + std::string(16, '1') + "\r\n",
                  Error({}, "ERR Protocol error: too big mbulk count string"), limits);
}

// Found by fuzz/resp_fuzz.cc: a header line longer than the bound whose \r came in the same
// Feed was "invalid multibulk length" when fed whole but "too big mbulk count string" when
// fed in pieces.
TEST(RequestParserTest, FuzzRegressionLongHeaderSameErrorWholeOrSplit) {
  Limits limits;
  limits.bulk_bytes_max = 64;
  limits.args_max = 8;
  limits.inline_bytes_max = 32;
  const std::string input = "*1M\nG" + std::string(50, '\0') + "\x01=\x03*1\r\n$4'2";
  ExpectAllSplits(input, Error({}, "ERR Protocol error: too big mbulk count string"), limits);
}

TEST(RequestParserTest, TooBigBulkCountString) {
  Limits limits;
  limits.inline_bytes_max = 16;
  ExpectAllSplits("*1\r\n$" + std::string(15, '1'), Commands({}), limits);
  ExpectAllSplits("*1\r\n$" + std::string(16, '1'),
                  Error({}, "ERR Protocol error: too big bulk count string"), limits);
  ExpectAllSplits("*1\r\n$" + std::string(16, '1') + "\r\n",
                  Error({}, "ERR Protocol error: too big bulk count string"), limits);
}

TEST(RequestParserTest, ErrorIsSticky) {
  RequestParser p;
  p.Feed("*x\r\n");
  Argv argv = {"kept"};
  ASSERT_EQ(p.Next(&argv), RequestParser::State::kError);
  EXPECT_EQ(p.error(), "ERR Protocol error: invalid multibulk length");
  p.Feed("*1\r\n$4\r\nPING\r\nPING\r\n");
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kError);
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kError);
  EXPECT_EQ(p.error(), "ERR Protocol error: invalid multibulk length");
  EXPECT_EQ(argv, Argv({"kept"}));
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(RequestParserTest, ErrorBeforeAnyNextCallIsStillReportedInOrder) {
  // Commands before the bad bytes come out first, even when all arrived in one Feed.
  EXPECT_EQ(ParseWhole("PING\r\nECHO a\r\n*1\r\n$x\r\n"),
            Error({{"PING"}, {"ECHO", "a"}}, "ERR Protocol error: invalid bulk length"));
}

// ---------------------------------------------------------------- memory and big bulks

TEST(RequestParserTest, BufferedBytesCountsPartialCommand) {
  RequestParser p;
  Argv argv;
  EXPECT_EQ(p.buffered_bytes(), 0u);
  p.Feed("*2\r\n$3\r\nfoo\r\n$3\r\nba");
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kNeedMore);
  EXPECT_EQ(p.buffered_bytes(), 5u);  // "foo" parsed, "ba" waiting
  p.Feed("r\r\n*1\r\n");
  ASSERT_EQ(p.Next(&argv), RequestParser::State::kCommand);
  EXPECT_EQ(argv, Argv({"foo", "bar"}));
  EXPECT_EQ(p.buffered_bytes(), 4u);  // "*1\r\n" not parsed yet
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kNeedMore);
  EXPECT_EQ(p.buffered_bytes(), 0u);  // parsed: a command with no argument read yet
}

TEST(RequestParserTest, ClaimedHugeBulkDoesNotAllocateUpFront) {
  RequestParser p;
  Argv argv;
  p.Feed("*2\r\n$3\r\nSET\r\n$536870912\r\nabc");
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kNeedMore);
  EXPECT_EQ(p.buffered_bytes(), 6u);
  EXPECT_LE(p.capacity_bytes(), (1u << 20) + 4096);
  p.Feed("def");
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kNeedMore);
  EXPECT_EQ(p.buffered_bytes(), 9u);
  EXPECT_LE(p.capacity_bytes(), (1u << 20) + 4096);
}

TEST(RequestParserTest, ClaimedHugeArgCountDoesNotAllocateUpFront) {
  RequestParser p;
  Argv argv;
  p.Feed("*1048576\r\n$1\r\na\r\n");
  EXPECT_EQ(p.Next(&argv), RequestParser::State::kNeedMore);
  EXPECT_EQ(p.buffered_bytes(), 1u);
  EXPECT_LE(p.capacity_bytes(), 1024 * sizeof(std::string) + 4096);
}

TEST(RequestParserTest, BigBulkInManyPieces) {
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  const std::string wire = Multibulk({"SET", "k", big}) + Multibulk({"GET", "k"});
  for (size_t piece : {1u << 10, 16u << 10, 64u << 10, 1u << 20}) {
    SCOPED_TRACE(piece);
    RequestParser p;
    Outcome out;
    size_t capacity_max = 0;
    for (size_t at = 0; at < wire.size(); at += piece) {
      p.Feed(std::string_view(wire).substr(at, piece));
      Drain(&p, &out);
      capacity_max = std::max(capacity_max, p.capacity_bytes());
    }
    ASSERT_EQ(out.commands.size(), 2u);
    EXPECT_TRUE(out.commands[0] == Argv({"SET", "k", big}));
    EXPECT_EQ(out.commands[1], Argv({"GET", "k"}));
    // The argument grows to its exact size; the buffer holds about one piece.
    EXPECT_LE(capacity_max, big.size() + 4 * piece + 8192);
  }
}

TEST(RequestParserTest, BigBulkByteAtATime) {
  const std::string big(100'000, 'v');
  const std::string wire = Multibulk({"SET", "k", big}) + "PING\r\n";
  RequestParser p;
  Outcome out;
  for (char c : wire) {
    p.Feed(std::string_view(&c, 1));
    Drain(&p, &out);
  }
  EXPECT_EQ(out, Commands({{"SET", "k", big}, {"PING"}}));
}

TEST(RequestParserTest, BigBulkMissingCrlf) {
  const std::string big(40'000, 'v');
  std::string wire = "*1\r\n$40000\r\n" + big + "XY";
  ExpectAllSplits(wire, Error({}, "ERR Protocol error: expected CRLF after bulk data"));
  wire = "*1\r\n$40000\r\n" + big + "\rY";
  EXPECT_EQ(ParseWhole(wire), Error({}, "ERR Protocol error: expected CRLF after bulk data"));
}

TEST(RequestParserTest, LongInlineLineByteAtATime) {
  // A 64 KiB line fed a byte at a time must not be rescanned per byte (that is 2^31 steps).
  const std::string arg(64 * 1024 - 6, 'a');  // "ECHO " + arg + "\r" is the longest line
  const std::string wire = "ECHO " + arg + "\r\nPING\r\n";
  RequestParser p;
  Outcome out;
  for (char c : wire) {
    p.Feed(std::string_view(&c, 1));
    Drain(&p, &out);
  }
  EXPECT_EQ(out, Commands({{"ECHO", arg}, {"PING"}}));
}

TEST(RequestParserTest, ManyPipelinedCommandsKeepBufferSmall) {
  std::string wire;
  for (int i = 0; i < 10000; ++i) wire += Multibulk({"INCR", "counter" + std::to_string(i)});
  RequestParser p;
  Outcome out;
  for (size_t at = 0; at < wire.size(); at += 4096) {
    p.Feed(std::string_view(wire).substr(at, 4096));
    Drain(&p, &out);
    EXPECT_LT(p.buffered_bytes(), 4096u);
  }
  ASSERT_EQ(out.commands.size(), 10000u);
  EXPECT_EQ(out.commands[9999], Argv({"INCR", "counter9999"}));
  EXPECT_LE(p.capacity_bytes(), 64u * 1024);
}

// ---------------------------------------------------------------- reply writer

std::string Write2(void (*fn)(ReplyWriter*)) {
  std::string out;
  ReplyWriter w(&out, 2);
  fn(&w);
  return out;
}

std::string Write3(void (*fn)(ReplyWriter*)) {
  std::string out;
  ReplyWriter w(&out, 3);
  fn(&w);
  return out;
}

TEST(ReplyWriterTest, SameInBothProtocols) {
  auto fn = [](ReplyWriter* w) {
    w->SimpleString("OK");
    w->Error("ERR unknown command");
    w->Integer(1);
    w->Integer(-42);
    w->Integer(std::numeric_limits<int64_t>::min());
    w->Bulk("foo");
    w->Bulk("");
    w->Bulk(std::string_view("a\r\n\0", 4));
    w->ArrayHeader(2);
  };
  const std::string expected =
      "+OK\r\n-ERR unknown command\r\n:1\r\n:-42\r\n:-9223372036854775808\r\n$3\r\nfoo\r\n"
      "$0\r\n\r\n$4\r\na\r\n\0\r\n*2\r\n"s;
  EXPECT_EQ(Write2(fn), expected);
  EXPECT_EQ(Write3(fn), Write2(fn));
  EXPECT_EQ(Write2(fn).size(), 89u);
}

TEST(ReplyWriterTest, LineBreaksInStatusAndErrorBecomeSpaces) {
  auto fn = [](ReplyWriter* w) {
    w->Error("ERR bad\r\nthing\n");
    w->SimpleString("a\rb");
  };
  EXPECT_EQ(Write2(fn), "-ERR bad  thing \r\n+a b\r\n");
}

TEST(ReplyWriterTest, Resp2Degradations) {
  auto fn = [](ReplyWriter* w) {
    w->Null();
    w->NullArray();
    w->MapHeader(2);
    w->SetHeader(3);
    w->PushHeader(3);
    w->Double(1.5);
    w->Boolean(true);
    w->Boolean(false);
    w->Verbatim("hello", "txt");
    w->BigNumber("-12345678901234567890");
  };
  EXPECT_EQ(Write2(fn),
            "$-1\r\n*-1\r\n*4\r\n*3\r\n*3\r\n$3\r\n1.5\r\n:1\r\n:0\r\n$5\r\nhello\r\n"
            "$21\r\n-12345678901234567890\r\n");
}

TEST(ReplyWriterTest, Resp3Types) {
  auto fn = [](ReplyWriter* w) {
    w->Null();
    w->NullArray();
    w->MapHeader(2);
    w->SetHeader(3);
    w->PushHeader(3);
    w->Double(1.5);
    w->Boolean(true);
    w->Boolean(false);
    w->Verbatim("hello", "mkd");
    w->BigNumber("-12345678901234567890");
  };
  EXPECT_EQ(Write3(fn),
            "_\r\n_\r\n%2\r\n~3\r\n>3\r\n,1.5\r\n#t\r\n#f\r\n=9\r\nmkd:hello\r\n"
            "(-12345678901234567890\r\n");
}

TEST(ReplyWriterTest, Doubles) {
  struct Case {
    double v;
    const char* text;
  };
  const Case cases[] = {
      {1.5, "1.5"},
      {0.1, "0.1"},
      {-2, "-2"},
      {0, "0"},
      {-0.0, "-0"},
      {1e16, "10000000000000000"},
      {1e17, "1e+17"},
      {123456789.125, "123456789.125"},
      {0.0001, "0.0001"},
      {0.00001, "1e-05"},
      {1.0 / 3, "0.3333333333333333"},
      {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"},
      {std::numeric_limits<double>::quiet_NaN(), "nan"},
      {std::numeric_limits<double>::max(), "1.7976931348623157e+308"},
      {std::numeric_limits<double>::denorm_min(), "5e-324"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    std::string out2;
    std::string out3;
    ReplyWriter(&out2, 2).Double(c.v);
    ReplyWriter(&out3, 3).Double(c.v);
    const std::string text = c.text;
    EXPECT_EQ(out3, "," + text + "\r\n");
    EXPECT_EQ(out2, "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n");
  }
}

TEST(ReplyWriterTest, SetProtocolSwitchesFollowingReplies) {
  std::string out;
  ReplyWriter w(&out);
  EXPECT_EQ(w.protocol(), 2);
  w.Null();
  w.SetProtocol(3);
  w.Null();
  w.SetProtocol(2);
  w.MapHeader(1);
  EXPECT_EQ(out, "$-1\r\n_\r\n*2\r\n");
}

TEST(ReplyWriterTest, AppendsAfterExistingBytes) {
  std::string out = "before";
  ReplyWriter w(&out);
  w.Integer(7);
  EXPECT_EQ(out, "before:7\r\n");
}

TEST(ReplyWriterDeathTest, BadArgumentsAreProgrammerErrors) {
  std::string out;
  EXPECT_DEATH(ReplyWriter bad(&out, 4), "protocol == 2");
  ReplyWriter w(&out, 3);
  EXPECT_DEATH(w.Verbatim("x", "text"), "fmt.size");
  EXPECT_DEATH(w.BigNumber("12a"), "IsBigNumber");
}

// ---------------------------------------------------------------- reply parser

using Type = ReplyValue::Type;

ReplyValue Scalar(Type type, std::string str = {}, int64_t integer = 0, double dbl = 0) {
  ReplyValue v;
  v.type = type;
  v.str = std::move(str);
  v.integer = integer;
  v.dbl = dbl;
  return v;
}
ReplyValue Simple(std::string s) { return Scalar(Type::kSimpleString, std::move(s)); }
ReplyValue Err(std::string s) { return Scalar(Type::kError, std::move(s)); }
ReplyValue Int(int64_t n) { return Scalar(Type::kInteger, {}, n); }
ReplyValue BulkV(std::string s) { return Scalar(Type::kBulk, std::move(s)); }
ReplyValue NullV() { return Scalar(Type::kNull); }
ReplyValue Dbl(double d) { return Scalar(Type::kDouble, {}, 0, d); }
ReplyValue Bool(bool b) { return Scalar(Type::kBoolean, {}, b ? 1 : 0); }
ReplyValue Big(std::string s) { return Scalar(Type::kBigNumber, std::move(s)); }
ReplyValue Verb(std::string fmt, std::string s) {
  ReplyValue v = Scalar(Type::kVerbatim, std::move(s));
  v.format = std::move(fmt);
  return v;
}
ReplyValue Agg(Type type, std::vector<ReplyValue> elements) {
  ReplyValue v = Scalar(type);
  v.elements = std::move(elements);
  return v;
}

struct ReplyOutcome {
  std::vector<ReplyValue> values;
  bool error = false;
  std::string error_text;
};

ReplyOutcome ParseReplies(std::string_view input, const std::vector<size_t>& cuts,
                          ReplyLimits limits = {}) {
  ReplyParser p(limits);
  ReplyOutcome out;
  size_t from = 0;
  for (size_t i = 0; i <= cuts.size() && !out.error; ++i) {
    const size_t to = i < cuts.size() ? cuts[i] : input.size();
    p.Feed(input.substr(from, to - from));
    from = to;
    for (int guard = 0; guard < 100000; ++guard) {
      ReplyValue v;
      const ReplyParser::State state = p.Next(&v);
      if (state == ReplyParser::State::kValue) {
        out.values.push_back(std::move(v));
        continue;
      }
      if (state == ReplyParser::State::kError) {
        out.error = true;
        out.error_text = p.error();
      }
      break;
    }
  }
  return out;
}

void ExpectSameReplies(const ReplyOutcome& got, const std::vector<ReplyValue>& expected,
                       const std::string& error) {
  EXPECT_EQ(got.error, !error.empty());
  EXPECT_EQ(got.error_text, error);
  ASSERT_EQ(got.values.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(got.values[i].Equals(expected[i])) << "value " << i;
  }
}

// Parses whole, a byte at a time and cut once at every offset; each must give `expected`
// followed by `error` (empty for none).
void ExpectRepliesAllSplits(std::string_view input, const std::vector<ReplyValue>& expected,
                            const std::string& error = {}, ReplyLimits limits = {}) {
  ExpectSameReplies(ParseReplies(input, {}, limits), expected, error);
  std::vector<size_t> bytes;
  for (size_t i = 1; i < input.size(); ++i) bytes.push_back(i);
  ExpectSameReplies(ParseReplies(input, bytes, limits), expected, error);
  for (size_t i = 1; i < input.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameReplies(ParseReplies(input, {i}, limits), expected, error);
  }
}

TEST(ReplyParserTest, Resp2Types) {
  ExpectRepliesAllSplits(
      "+OK\r\n-ERR x y\r\n:42\r\n:-9223372036854775808\r\n$3\r\nf\r\n\r\n$0\r\n\r\n$-1\r\n"
      "*-1\r\n*2\r\n$1\r\na\r\n:1\r\n*0\r\n",
      {Simple("OK"), Err("ERR x y"), Int(42), Int(std::numeric_limits<int64_t>::min()),
       BulkV("f\r\n"), BulkV(""), NullV(), NullV(), Agg(Type::kArray, {BulkV("a"), Int(1)}),
       Agg(Type::kArray, {})});
}

TEST(ReplyParserTest, Resp3Types) {
  ExpectRepliesAllSplits(
      "_\r\n,1.5\r\n,inf\r\n,-inf\r\n,nan\r\n,-0\r\n#t\r\n#f\r\n=7\r\ntxt:abc\r\n(-123\r\n"
      "!5\r\nERR x\r\n%1\r\n+k\r\n:1\r\n~2\r\n:1\r\n:2\r\n>2\r\n+message\r\n+hi\r\n",
      {NullV(), Dbl(1.5), Dbl(std::numeric_limits<double>::infinity()),
       Dbl(-std::numeric_limits<double>::infinity()), Dbl(std::numeric_limits<double>::quiet_NaN()),
       Dbl(-0.0), Bool(true), Bool(false), Verb("txt", "abc"), Big("-123"), Err("ERR x"),
       Agg(Type::kMap, {Simple("k"), Int(1)}), Agg(Type::kSet, {Int(1), Int(2)}),
       Agg(Type::kPush, {Simple("message"), Simple("hi")})});
}

TEST(ReplyParserTest, Nested) {
  ExpectRepliesAllSplits(
      "*3\r\n*2\r\n:1\r\n*1\r\n:2\r\n*0\r\n:3\r\n:4\r\n",
      {Agg(Type::kArray, {Agg(Type::kArray, {Int(1), Agg(Type::kArray, {Int(2)})}),
                          Agg(Type::kArray, {}), Int(3)}),
       Int(4)});
}

TEST(ReplyParserTest, AttributesAreDropped) {
  ExpectRepliesAllSplits(
      "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:1\r\n|1\r\n+x\r\n+y\r\n:2\r\n"
      "|0\r\n+OK\r\n",
      {Agg(Type::kArray, {Int(1), Int(2)}), Simple("OK")});
}

TEST(ReplyParserTest, DepthMax) {
  ReplyLimits limits;
  limits.depth_max = 3;
  ExpectRepliesAllSplits("*1\r\n*1\r\n*1\r\n:1\r\n",
                         {Agg(Type::kArray, {Agg(Type::kArray, {Agg(Type::kArray, {Int(1)})})})},
                         {}, limits);
  ExpectRepliesAllSplits("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", {},
                         "Protocol error: reply nested too deep", limits);
}

TEST(ReplyParserTest, VeryDeepInputFailsWithoutCrashing) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "*1\r\n";
  const ReplyOutcome out = ParseReplies(deep, {});
  EXPECT_TRUE(out.error);
  EXPECT_EQ(out.error_text, "Protocol error: reply nested too deep");
}

TEST(ReplyParserTest, Errors) {
  struct Case {
    std::string input;
    std::string error;
  };
  const Case cases[] = {
      {"?x\r\n", "Protocol error: unknown reply type"},
      {"+OK\rX", "Protocol error: expected CRLF"},
      {":abc\r\n", "Protocol error: invalid value"},
      {":01\r\n", "Protocol error: invalid value"},
      {"_x\r\n", "Protocol error: invalid value"},
      {"#x\r\n", "Protocol error: invalid value"},
      {",\r\n", "Protocol error: invalid value"},
      {",1.5x\r\n", "Protocol error: invalid value"},
      {"(12a\r\n", "Protocol error: invalid value"},
      {"(\r\n", "Protocol error: invalid value"},
      {"$-2\r\n", "Protocol error: invalid bulk length"},
      {"!-1\r\n", "Protocol error: invalid bulk length"},
      {"$x\r\n", "Protocol error: invalid bulk length"},
      {"$3\r\nfooX", "Protocol error: expected CRLF after bulk data"},
      {"$3\r\nfoo\rX", "Protocol error: expected CRLF after bulk data"},
      {"=2\r\nab\r\n", "Protocol error: invalid verbatim string"},
      {"=4\r\nabcd\r\n", "Protocol error: invalid verbatim string"},
      {"*-2\r\n", "Protocol error: invalid aggregate length"},
      {"%-1\r\n", "Protocol error: invalid aggregate length"},
      {"*x\r\n", "Protocol error: invalid aggregate length"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    ExpectRepliesAllSplits("+before\r\n" + c.input, {Simple("before")}, c.error);
  }
}

TEST(ReplyParserTest, Limits) {
  ReplyLimits limits;
  limits.bulk_bytes_max = 3;
  limits.elements_max = 2;
  limits.line_bytes_max = 8;
  ExpectRepliesAllSplits("$3\r\nabc\r\n*2\r\n:1\r\n:2\r\n%2\r\n",
                         {BulkV("abc"), Agg(Type::kArray, {Int(1), Int(2)})}, {}, limits);
  ExpectRepliesAllSplits("$4\r\nabcd\r\n", {}, "Protocol error: invalid bulk length", limits);
  ExpectRepliesAllSplits("*3\r\n", {}, "Protocol error: invalid aggregate length", limits);
  // The bound counts the type byte and the text, not the \r\n.
  ExpectRepliesAllSplits("+1234567\r\n", {Simple("1234567")}, {}, limits);
  ExpectRepliesAllSplits("+12345678", {}, "Protocol error: too long line", limits);
  ExpectRepliesAllSplits("+12345678\r\n", {}, "Protocol error: too long line", limits);
}

TEST(ReplyParserTest, ErrorIsSticky) {
  ReplyParser p;
  p.Feed("?\r\n");
  ReplyValue v;
  EXPECT_EQ(p.Next(&v), ReplyParser::State::kError);
  p.Feed("+OK\r\n");
  EXPECT_EQ(p.Next(&v), ReplyParser::State::kError);
  EXPECT_EQ(p.error(), "Protocol error: unknown reply type");
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(ReplyValueTest, Equals) {
  const ReplyValue a = Agg(Type::kArray, {Int(1), Agg(Type::kMap, {Simple("k"), Dbl(NAN)})});
  EXPECT_TRUE(a.Equals(a));
  EXPECT_FALSE(a.Equals(Agg(Type::kArray, {Int(1), Agg(Type::kMap, {Simple("k"), Dbl(1)})})));
  EXPECT_FALSE(a.Equals(Agg(Type::kArray, {Int(1)})));
  EXPECT_FALSE(a.Equals(Agg(Type::kSet, a.elements)));
  EXPECT_FALSE(Dbl(0.0).Equals(Dbl(-0.0)));
  EXPECT_FALSE(Verb("txt", "a").Equals(Verb("mkd", "a")));
}

// ---------------------------------------------------------------- writer -> parser

std::vector<ReplyValue> WriteAndParse(int protocol) {
  std::string out;
  ReplyWriter w(&out, protocol);
  w.MapHeader(2);
  w.Bulk("name");
  w.SimpleString("synod");
  w.Bulk("ratio");
  w.Double(0.25);
  w.SetHeader(1);
  w.Boolean(true);
  w.Null();
  w.NullArray();
  w.Verbatim("info", "txt");
  w.BigNumber("123456789012345678901234567890");
  w.PushHeader(2);
  w.Bulk("message");
  w.Error("ERR\nbad");
  w.Integer(-5);
  const ReplyOutcome parsed = ParseReplies(out, {});
  EXPECT_FALSE(parsed.error) << parsed.error_text;
  return parsed.values;
}

TEST(RoundTripTest, Resp3) {
  ExpectSameReplies({WriteAndParse(3), false, {}},
                    {Agg(Type::kMap, {BulkV("name"), Simple("synod"), BulkV("ratio"), Dbl(0.25)}),
                     Agg(Type::kSet, {Bool(true)}), NullV(), NullV(), Verb("txt", "info"),
                     Big("123456789012345678901234567890"),
                     Agg(Type::kPush, {BulkV("message"), Err("ERR bad")}), Int(-5)},
                    {});
}

TEST(RoundTripTest, Resp2) {
  ExpectSameReplies(
      {WriteAndParse(2), false, {}},
      {Agg(Type::kArray, {BulkV("name"), Simple("synod"), BulkV("ratio"), BulkV("0.25")}),
       Agg(Type::kArray, {Int(1)}), NullV(), NullV(), BulkV("info"),
       BulkV("123456789012345678901234567890"),
       Agg(Type::kArray, {BulkV("message"), Err("ERR bad")}), Int(-5)},
      {});
}

// Writes one random reply tree with w and returns what a parser should read back.
ReplyValue WriteRandomTree(std::mt19937* rng, ReplyWriter* w) {
  struct Open {
    ReplyValue value;
    size_t remaining;
  };
  std::vector<Open> open;
  for (int node = 0; node < 10000; ++node) {
    ReplyValue v;
    const bool leaf_only = open.size() >= 4 || node > 60;
    const int kind = static_cast<int>((*rng)() % (leaf_only ? 9 : 13));
    const std::string s(static_cast<size_t>((*rng)() % 5), static_cast<char>('a' + kind));
    const int64_t n = static_cast<int64_t>((*rng)()) - (1ll << 31);
    size_t count = (*rng)() % 4;
    switch (kind) {
      case 0:
        w->SimpleString(s);
        v = Simple(s);
        break;
      case 1:
        w->Error("ERR " + s);
        v = Err("ERR " + s);
        break;
      case 2:
        w->Integer(n);
        v = Int(n);
        break;
      case 3:
        w->Bulk(s + "\r\n");
        v = BulkV(s + "\r\n");
        break;
      case 4:
        w->Null();
        v = NullV();
        break;
      case 5:
        w->Double(static_cast<double>(n) / 7);
        v = Dbl(static_cast<double>(n) / 7);
        break;
      case 6:
        w->Boolean(n % 2 == 0);
        v = Bool(n % 2 == 0);
        break;
      case 7:
        w->Verbatim(s, "txt");
        v = Verb("txt", s);
        break;
      case 8:
        w->BigNumber(std::to_string(n));
        v = Big(std::to_string(n));
        break;
      case 9:
        w->ArrayHeader(count);
        v = Agg(Type::kArray, {});
        break;
      case 10:
        w->MapHeader(count);
        v = Agg(Type::kMap, {});
        count *= 2;
        break;
      case 11:
        w->SetHeader(count);
        v = Agg(Type::kSet, {});
        break;
      default:
        w->PushHeader(count);
        v = Agg(Type::kPush, {});
        break;
    }
    if (kind >= 9 && count > 0) {
      open.push_back({std::move(v), count});
      continue;
    }
    while (true) {
      if (open.empty()) return v;
      open.back().value.elements.push_back(std::move(v));
      if (--open.back().remaining > 0) break;
      v = std::move(open.back().value);
      open.pop_back();
    }
  }
  ADD_FAILURE() << "tree did not close";
  return {};
}

TEST(RoundTripTest, RandomResp3Trees) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string out;
    ReplyWriter w(&out, 3);
    std::vector<ReplyValue> expected;
    for (int i = 0; i < 5; ++i) expected.push_back(WriteRandomTree(&rng, &w));
    SCOPED_TRACE(out);
    ExpectSameReplies(ParseReplies(out, {}), expected, {});
    std::vector<size_t> cuts;
    for (size_t at = 1 + rng() % 5; at < out.size(); at += 1 + rng() % 5) cuts.push_back(at);
    ExpectSameReplies(ParseReplies(out, cuts), expected, {});
  }
}

// Request bytes built by a writer (clients send arrays of bulks) parse back to the argv.
TEST(RoundTripTest, WriterArraysAreRequests) {
  std::string out;
  ReplyWriter w(&out);
  w.ArrayHeader(3);
  w.Bulk("SET");
  w.Bulk("k");
  w.Bulk(std::string(70000, 'x'));
  ExpectAllSplits(out, Commands({{"SET", "k", std::string(70000, 'x')}}));
}

}  // namespace
}  // namespace synod::resp
