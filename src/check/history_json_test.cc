#include "check/history_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "check/testing.h"

namespace synod::check {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace t = testing;

// The parse error for a one-operation file whose only line is `line`, on line 2 after a good one.
std::string ErrorOnLine2(const std::string& line) {
  const std::string good = R"({"client":1,"op":"put","key":"k","value":"v","call":1,"return":2})"
                           "\n";
  Result<History> h = ParseHistoryJsonl(good + line + "\n");
  EXPECT_FALSE(h.ok()) << line;
  if (h.ok()) return "";
  EXPECT_EQ(h.status().code(), Code::kInvalidArgument);
  return std::string(h.status().message());
}

TEST(HistoryJsonTest, ParsesEveryField) {
  Result<History> h = ParseHistoryJsonl(
      R"({"client":3,"op":"cas","key":"k1","value":"v","expected":"v0","call":123,)"
      R"("return":456,"ok":false,"unknown":false})");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->size(), 1u);
  EXPECT_EQ((*h)[0], t::Cas(3, "k1", "v0", "v", false, 123, 456));
}

TEST(HistoryJsonTest, DefaultsAndNulls) {
  // ok defaults to true and unknown to false; a get of null read an absent key; an unknown
  // operation needs no return; blank lines are skipped.
  Result<History> h = ParseHistoryJsonl(
      "\n"
      R"({"client":1,"op":"get","key":"k","value":null,"call":5,"return":9})"
      "\n  \r\n"
      R"({"client":2,"op":"put","key":"k","value":"x","call":7,"unknown":true})"
      "\r\n"
      R"({"client":2,"op":"del","key":"k","call":7,"return":8,"extra":"ignored"})");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0], t::Get(1, "k", std::nullopt, 5, 9));
  Operation unknown_put = t::Unknown(t::Put(2, "k", "x", 7, 7));
  EXPECT_EQ((*h)[1], unknown_put);
  EXPECT_EQ((*h)[2], t::Del(2, "k", 7, 8));
}

TEST(HistoryJsonTest, ErrorsNameTheLine) {
  EXPECT_THAT(ErrorOnLine2(R"({"client":1,"op":"put",)"),
              StartsWith("line 2: malformed JSON: parse error at column"));
  EXPECT_EQ(ErrorOnLine2("[1,2]"), "line 2: expected a JSON object");
  EXPECT_EQ(ErrorOnLine2(R"({"op":"get","key":"k","value":null,"call":1,"return":2})"),
            "line 2: missing field \"client\"");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"get","key":"k","value":null,"return":2})"),
            "line 2: missing field \"call\"");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"get","key":"k","value":null,"call":1})"),
            "line 2: missing field \"return\"");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"get","key":"k","call":1,"return":2})"),
            "line 2: missing field \"value\"");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"cas","key":"k","value":"a","call":1,"return":2})"),
            "line 2: missing field \"expected\"");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"incr","key":"k","call":1,"return":2})"),
            "line 2: unknown op \"incr\" (expected get, put, del or cas)");
  EXPECT_EQ(ErrorOnLine2(R"({"client":"a","op":"del","key":"k","call":1,"return":2})"),
            "line 2: field \"client\" must be an integer, not string");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"del","key":"k","call":1.5,"return":2})"),
            "line 2: field \"call\" must be an integer, not number");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"del","key":7,"call":1,"return":2})"),
            "line 2: field \"key\" must be a string, not number");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"put","key":"k","value":3,"call":1,"return":2})"),
            "line 2: field \"value\" must be a string or null, not number");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"del","key":"k","call":1,"return":2,"ok":1})"),
            "line 2: field \"ok\" must be true or false, not number");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"del","key":"k","call":9,"return":2})"),
            "line 2: \"return\" (2) is before \"call\" (9)");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"put","key":"k","value":null,"call":1,"return":2})"),
            "line 2: put needs a string \"value\" (use del to delete)");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"del","key":"k","value":"v","call":1,"return":2})"),
            "line 2: del takes no \"value\" (it must be null or absent)");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"get","key":"k","value":null,"expected":"x",)"
                         R"("call":1,"return":2})"),
            "line 2: \"expected\" is only meaningful for cas (use null)");
  EXPECT_EQ(ErrorOnLine2(R"({"client":1,"op":"del","key":"k","call":18446744073709551615,)"
                         R"("return":2})"),
            "line 2: field \"call\" is too large");
}

TEST(HistoryJsonTest, LineNumbersCountBlankLines) {
  Result<History> h = ParseHistoryJsonl("\n\n{}\n");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().message(), "line 3: missing field \"client\"");
}

TEST(HistoryJsonTest, UnknownOperationMayReturnBeforeCall) {
  // The return time of an unknown operation is meaningless, so it is not checked.
  Result<History> h = ParseHistoryJsonl(
      R"({"client":1,"op":"put","key":"k","value":"v","call":9,"return":2,"unknown":true})");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ((*h)[0].return_ns, 2);
}

TEST(HistoryJsonTest, WritesTheDocumentedFormat) {
  Result<std::string> line = OperationToJson(t::Cas(3, "k1", std::nullopt, "v", true, 123, 456));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(*line, R"({"client":3,"op":"cas","key":"k1","value":"v","expected":null,"call":123,)"
                   R"("return":456,"ok":true,"unknown":false})");
}

TEST(HistoryJsonTest, RoundTrip) {
  History h = t::GenerateLinearizableHistory({.clients = 4, .ops_per_client = 50, .seed = 7});
  h.push_back(t::Put(-5, "quote\"and\\slash\n", "caf\xc3\xa9", -10, 9'000'000'000'000));
  h.push_back(t::Unknown(t::Cas(1, "", std::nullopt, std::nullopt, false, 3, 1)));
  Result<std::string> text = WriteHistoryJsonl(h);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  Result<History> back = ParseHistoryJsonl(*text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, h);
}

TEST(HistoryJsonTest, RefusesToWriteInvalidUtf8) {
  History h = {t::Put(1, "k", "ok", 1, 2), t::Put(1, "k", "\xff\xfe", 3, 4)};
  Result<std::string> text = WriteHistoryJsonl(h);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("op #2"));
}

}  // namespace
}  // namespace synod::check
