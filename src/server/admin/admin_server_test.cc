#include "server/admin/admin_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "server/admin/metrics.h"

namespace synod::admin {
namespace {

int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// A started server with a metrics route, a JSON route and an echo route.
class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    requests_ = registry_.AddCounter("synod_test_requests_total", "Requests.", {{"k", "v"}});
    requests_->Inc(7);
    StartServer(AdminOptions{});
  }

  void StartServer(AdminOptions opts) {
    server_ = std::make_unique<AdminServer>(opts, Logger());
    server_->Handle("GET", "/metrics", MetricsHandler(&registry_));
    server_->Handle("GET", "/status", [](const HttpRequest& req) {
      nlohmann::json j;
      j["leader"] = 3;
      auto it = req.params.find("verbose");
      j["verbose"] = it == req.params.end() ? "" : it->second;
      return JsonResponse(200, j.dump());
    });
    server_->Handle("POST", "/echo", [](const HttpRequest& req) {
      return TextResponse(201, req.method + " " + req.path + " " + req.body);
    });
    server_->Handle("GET", "/throw",
                    [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", PortOf(server_->bound_address()));
  }

  Registry registry_;
  Counter* requests_ = nullptr;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminServerTest, BindsPortZeroOnLoopback) {
  std::string addr = server_->bound_address();
  EXPECT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
  EXPECT_GT(PortOf(addr), 0);
}

TEST_F(AdminServerTest, MetricsReturnsRenderedTextInPrometheusFormat) {
  auto res = client_->Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_EQ(res->body, registry_.Render());
  EXPECT_NE(res->body.find("synod_test_requests_total{k=\"v\"} 7\n"), std::string::npos);
}

TEST_F(AdminServerTest, JsonHandlerGetsQueryParameters) {
  auto res = client_->Get("/status?verbose=yes");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  auto j = nlohmann::json::parse(res->body);
  EXPECT_EQ(j["leader"], 3);
  EXPECT_EQ(j["verbose"], "yes");
}

TEST_F(AdminServerTest, PostHandlerGetsBodyAndSetsStatus) {
  auto res = client_->Post("/echo", "hello", "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 201);
  EXPECT_EQ(res->body, "POST /echo hello");
}

TEST_F(AdminServerTest, UnknownPathIs404ListingKnownPaths) {
  auto res = client_->Get("/nope");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 404);
  EXPECT_NE(res->body.find("/metrics"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("/status"), std::string::npos) << res->body;
  // Paths match exactly, not as prefixes or patterns.
  auto sub = client_->Get("/metrics/x");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->status, 404);
}

TEST_F(AdminServerTest, WrongMethodIs405WithAllowHeader) {
  auto res = client_->Post("/metrics", "", "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->get_header_value("Allow"), "GET");
  auto del = client_->Delete("/echo");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  EXPECT_EQ(del->get_header_value("Allow"), "POST");
}

TEST_F(AdminServerTest, IndexListsRoutes) {
  auto res = client_->Get("/");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  for (const char* path : {"/metrics", "/status", "/echo", "/"}) {
    EXPECT_NE(res->body.find(path), std::string::npos) << path << " in " << res->body;
  }
}

TEST_F(AdminServerTest, HandlerExceptionBecomes500AndServerKeepsServing) {
  auto res = client_->Get("/throw");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 500);
  EXPECT_NE(res->body.find("boom"), std::string::npos);
  auto again = client_->Get("/metrics");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST_F(AdminServerTest, LargeBodyIsRefusedWith413) {
  AdminOptions opts;
  opts.request_body_bytes_max = 1024;
  StartServer(opts);
  auto small = client_->Post("/echo", std::string(1000, 'a'), "text/plain");
  ASSERT_TRUE(small) << httplib::to_string(small.error());
  EXPECT_EQ(small->status, 201);
  auto large = client_->Post("/echo", std::string(4096, 'a'), "text/plain");
  ASSERT_TRUE(large) << httplib::to_string(large.error());
  EXPECT_EQ(large->status, 413);
  EXPECT_NE(large->body.find("1024"), std::string::npos) << large->body;
}

TEST_F(AdminServerTest, PortInUseIsAnIoError) {
  AdminOptions opts;
  opts.address = server_->bound_address();
  AdminServer second(opts, Logger());
  Status s = second.Start();
  EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
  EXPECT_NE(s.ToString().find(opts.address), std::string::npos) << s.ToString();
  EXPECT_EQ(second.bound_address(), "");
  second.Stop();  // a no-op after a failed start
  // The first server is unaffected.
  auto res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(AdminServerTest, StopIsIdempotentAndClosesThePort) {
  server_->Stop();
  server_->Stop();
  client_->set_connection_timeout(1);
  auto res = client_->Get("/metrics");
  EXPECT_FALSE(res);
}

TEST(AdminServerAddressTest, MalformedAddressIsInvalidArgument) {
  for (const char* address : {"localhost", "127.0.0.1:", "127.0.0.1:99999", ":80", "h:8x"}) {
    AdminOptions opts;
    opts.address = address;
    AdminServer server(opts, Logger());
    EXPECT_EQ(server.Start().code(), Code::kInvalidArgument) << address;
  }
}

TEST(AdminServerLifecycleTest, StopRightAfterStartDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    AdminServer server(AdminOptions{}, Logger());
    ASSERT_TRUE(server.Start().ok());
  }  // the destructor stops
}

TEST(CallWithTimeoutTest, ReturnsTheResultWhenThePostedFunctionRuns) {
  std::thread core;
  auto post = [&](std::function<void()> f) { core = std::thread(std::move(f)); };
  HttpResponse r = CallWithTimeout(
      post, [] { return TextResponse(200, "from core"); }, 5000);
  core.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "from core");
}

TEST(CallWithTimeoutTest, DroppedFunctionIs503WithoutWaitingForTheTimeout) {
  auto drop = [](std::function<void()>) {};
  auto start = std::chrono::steady_clock::now();
  HttpResponse r = CallWithTimeout(
      drop, [] { return TextResponse(200, "never"); }, 10000);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("core unavailable"), std::string::npos) << r.body;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(CallWithTimeoutTest, StalledCoreIs503AndALateRunIsHarmless) {
  std::function<void()> parked;
  auto park = [&](std::function<void()> f) { parked = std::move(f); };
  int runs = 0;
  HttpResponse r = CallWithTimeout(
      park,
      [&runs] {
        ++runs;
        return TextResponse(200, "late");
      },
      50);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "core busy: no answer within 50 ms\n");
  ASSERT_TRUE(parked);
  // The core gets to it after the caller gave up; the result slot must still be alive.
  parked();
  parked();  // a second run of a copied closure must not answer twice
  EXPECT_EQ(runs, 1);
}

TEST(CallWithTimeoutTest, ThrowingFunctionIs500) {
  auto inline_post = [](std::function<void()> f) { f(); };
  HttpResponse r = CallWithTimeout(
      inline_post, []() -> HttpResponse { throw std::runtime_error("bad state"); }, 1000);
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("bad state"), std::string::npos);
}

TEST_F(AdminServerTest, RouteThatWaitsOnAStalledCoreAnswers503) {
  std::function<void()> parked;
  std::mutex mu;
  AdminOptions opts;
  opts.handler_timeout_ms = 100;
  server_ = std::make_unique<AdminServer>(opts, Logger());
  server_->Handle("GET", "/raft", [&](const HttpRequest&) {
    auto park = [&](std::function<void()> f) {
      std::lock_guard<std::mutex> lock(mu);
      parked = std::move(f);
    };
    return CallWithTimeout(
        park, [] { return TextResponse(200, "state"); }, opts.handler_timeout_ms);
  });
  ASSERT_TRUE(server_->Start().ok());
  httplib::Client client("127.0.0.1", PortOf(server_->bound_address()));
  auto res = client.Get("/raft");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "core busy: no answer within 100 ms\n");
  server_->Stop();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_TRUE(parked);
  parked();  // runs after the request and the server are gone
}

}  // namespace
}  // namespace synod::admin
