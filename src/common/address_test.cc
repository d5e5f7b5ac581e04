#include "common/address.h"

#include <gtest/gtest.h>

namespace synod {
namespace {

TEST(AddressTest, SplitsHostAndPort) {
  auto hp = SplitHostPort("127.0.0.1:7001");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 7001);
  hp = SplitHostPort("[::1]:9");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 9);
  EXPECT_TRUE(SplitHostPort("localhost:65535").ok());
}

TEST(AddressTest, PortZeroOnlyWhereAllowed) {
  EXPECT_TRUE(SplitHostPort("127.0.0.1:0").ok());
  EXPECT_FALSE(SplitHostPort("127.0.0.1:0", PortZero::kRefused).ok());
}

TEST(AddressTest, RejectsMalformedAddresses) {
  for (const char* bad : {"nohost", ":80", "h:", "h:65536", "h:-1", "h:8x", "[]:80", "h:+80"}) {
    auto hp = SplitHostPort(bad);
    EXPECT_FALSE(hp.ok()) << bad;
    if (!hp.ok()) {
      EXPECT_EQ(hp.status().code(), Code::kInvalidArgument) << bad;
      EXPECT_NE(hp.status().message().find(bad), std::string_view::npos) << bad;
    }
  }
}

}  // namespace
}  // namespace synod
