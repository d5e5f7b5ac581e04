#include "common/status.h"

#include <gtest/gtest.h>

#include "common/ids.h"

namespace synod {
namespace {

TEST(StatusTest, OkIsEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = Status::NotLeader("leader is 3");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotLeader);
  EXPECT_EQ(s.message(), "leader is 3");
  EXPECT_EQ(s.ToString(), "NotLeader: leader is 3");
  Status copy = s;
  EXPECT_EQ(copy.ToString(), s.ToString());
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

TEST(ResultTest, ValueOrStatus) {
  auto r = Half(4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 2);
  auto e = Half(3);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
}

TEST(ResultDeathTest, ValueOfErrorCrashes) {
  auto e = Half(3);
  EXPECT_DEATH((void)e.value(), "assertion failed");
}

TEST(IdsTest, ArithmeticAndOrder) {
  LogIndex i(5);
  EXPECT_EQ(i + 1, LogIndex(6));
  EXPECT_EQ(i - 5, LogIndex(0));
  EXPECT_LT(LogIndex(1), LogIndex(2));
  ++i;
  EXPECT_EQ(i.value(), 6u);
  static_assert(!std::is_convertible_v<Term, LogIndex>);
}

}  // namespace
}  // namespace synod
