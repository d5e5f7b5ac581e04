#include "server/admin/admin_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <exception>
#include <future>
#include <system_error>

#include <fmt/format.h>
#include <httplib.h>

#include "common/address.h"
#include "common/assert.h"
#include "server/admin/metrics.h"

namespace synod::admin {
namespace {

constexpr const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

// How long Stop() waits for the listening thread to enter its accept loop; it does so within
// microseconds unless the machine is badly overloaded.
constexpr auto kListenStartWaitMax = std::chrono::seconds(60);

// An idle keep-alive connection occupies a serving thread; with a pool of two, a long
// keep-alive would let two idle scrapers starve every other route and slow Stop() down.
constexpr time_t kKeepAliveTimeoutSec = 1;

std::string FormatAddress(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos;
  return v6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

// Handlers are project code that should not throw, but an exception escaping into
// cpp-httplib would be answered by the library in its own way (or not at all under
// -fno-exceptions builds); catching here keeps the answer ours.
HttpResponse InvokeNoThrow(const std::function<HttpResponse()>& fn, std::string* error) {
  try {
    return fn();
  } catch (const std::exception& e) {
    *error = e.what();
  } catch (...) {
    *error = "unknown exception";
  }
  return TextResponse(500, fmt::format("internal error: {}\n", *error));
}

HttpRequest ToHttpRequest(const httplib::Request& req) {
  HttpRequest out;
  out.method = req.method;
  out.path = req.path;
  out.body = req.body;
  // httplib keeps repeated parameters in a multimap in arrival order; emplace keeps the first.
  for (const auto& [name, value] : req.params) out.params.emplace(name, value);
  return out;
}

}  // namespace

HttpResponse TextResponse(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body)};
}

HttpResponse JsonResponse(int status, std::string json_body) {
  return HttpResponse{status, "application/json", std::move(json_body)};
}

Handler MetricsHandler(const Registry* registry) {
  SYNOD_ASSERT(registry != nullptr);
  return [registry](const HttpRequest&) {
    return HttpResponse{200, std::string(kPrometheusContentType), registry->Render()};
  };
}

AdminServer::AdminServer(AdminOptions opts, Logger logger)
    : opts_(std::move(opts)), logger_(logger.With("component=admin ")) {
  SYNOD_ASSERT_MSG(opts_.threads >= 1, "the admin server needs at least one thread");
  SYNOD_ASSERT(opts_.handler_timeout_ms >= 0);
}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Handle(std::string method, std::string path, Handler h) {
  SYNOD_ASSERT_MSG(!started_, "routes are registered before Start()");
  SYNOD_ASSERT_MSG(
      std::find(std::begin(kMethods), std::end(kMethods), method) != std::end(kMethods),
      "unsupported HTTP method");
  SYNOD_ASSERT_MSG(!path.empty() && path[0] == '/', "a route path starts with '/'");
  SYNOD_ASSERT(h != nullptr);
  for (const Route& r : routes_) {
    SYNOD_ASSERT_MSG(r.method != method || r.path != path, "route registered twice");
  }
  routes_.push_back(Route{std::move(method), std::move(path), std::move(h)});
}

HttpResponse AdminServer::IndexPage() const {
  std::string body = "Synod admin routes:\n";
  for (const Route& r : routes_) body += fmt::format("  {:<6} {}\n", r.method, r.path);
  return TextResponse(200, std::move(body));
}

HttpResponse AdminServer::Route404() const {
  std::string body = "not found; known paths:\n";
  std::vector<std::string_view> seen;
  for (const Route& r : routes_) {
    if (std::find(seen.begin(), seen.end(), r.path) != seen.end()) continue;
    seen.push_back(r.path);
    body += fmt::format("  {}\n", r.path);
  }
  return TextResponse(404, std::move(body));
}

// Routing is done here rather than by cpp-httplib's regex table so that a known path with the
// wrong method can be told apart from an unknown path (405 vs 404), and so that paths are
// matched exactly instead of as regular expressions.
void AdminServer::Serve(const httplib::Request& req, httplib::Response& res) const {
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  const Route* route = nullptr;
  std::string allowed;
  for (const Route& r : routes_) {
    if (r.path != req.path) continue;
    if (r.method == method) route = &r;
    allowed += allowed.empty() ? r.method : ", " + r.method;
  }
  HttpResponse out;
  if (route != nullptr) {
    HttpRequest request = ToHttpRequest(req);
    std::string error;
    out = InvokeNoThrow([&] { return route->handler(request); }, &error);
    if (!error.empty()) {
      logger_.Warn("handler threw method={} path={} error={}", method, req.path, error);
    }
  } else if (!allowed.empty()) {
    out =
        TextResponse(405, fmt::format("method {} not allowed; allowed: {}\n", req.method, allowed));
    res.set_header("Allow", allowed);
  } else {
    out = Route404();
  }
  res.status = out.status;
  res.set_content(out.body, out.content_type);
}

void AdminServer::ConfigureServer() {
  const size_t threads = static_cast<size_t>(opts_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(opts_.request_body_bytes_max);
  // cpp-httplib's 5 s read and write timeouts stay: they bound how long a stalled client can
  // hold a serving thread, independently of how long a route may wait for the core.
  server_->set_keep_alive_timeout(kKeepAliveTimeoutSec);
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second process bind the same port
  // and silently split the traffic. SO_REUSEADDR alone still allows a quick restart while old
  // connections sit in TIME_WAIT, but a taken port fails the bind as it should.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  auto serve = [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res); };
  server_->Get(".*", serve);
  server_->Post(".*", serve);
  server_->Put(".*", serve);
  server_->Patch(".*", serve);
  server_->Delete(".*", serve);
  server_->Options(".*", serve);
  // Errors cpp-httplib produces itself (400 for a bad request line, 413 for a large body)
  // come with an empty body; give them a line of text like ours.
  const size_t body_max = opts_.request_body_bytes_max;
  server_->set_error_handler([body_max](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string text = res.status == 413
                           ? fmt::format("request body larger than {} bytes\n", body_max)
                           : fmt::format("HTTP error {}\n", res.status);
    res.set_content(text, "text/plain; charset=utf-8");
  });
}

Status AdminServer::Start() {
  SYNOD_ASSERT_MSG(!started_, "Start() is called once");
  started_ = true;
  Result<HostPort> hp = SplitHostPort(opts_.address);
  if (!hp.ok()) return hp.status();
  if (std::none_of(routes_.begin(), routes_.end(), [](const Route& r) { return r.path == "/"; })) {
    routes_.push_back(Route{"GET", "/", [this](const HttpRequest&) { return IndexPage(); }});
  }
  server_ = std::make_unique<httplib::Server>();
  ConfigureServer();
  errno = 0;
  int port = hp->port == 0 ? server_->bind_to_any_port(hp->host)
                           : (server_->bind_to_port(hp->host, hp->port) ? hp->port : -1);
  if (port < 0) {
    int err = errno;
    server_.reset();
    return Status::IoError(
        fmt::format("admin server cannot listen on {}: {}", opts_.address,
                    err != 0 ? std::generic_category().message(err) : std::string("bind failed")));
  }
  bound_address_ = FormatAddress(hp->host, port);
  listen_thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) {
      logger_.Error("admin server stopped accepting address={}", bound_address_);
    }
    listen_done_.store(true);
  });
  logger_.Info("admin server listening address={} threads={}", bound_address_, opts_.threads);
  return Status::Ok();
}

void AdminServer::Stop() {
  if (server_ == nullptr) return;
  // cpp-httplib's stop() only acts once the listening thread has marked the server running;
  // called earlier it would do nothing and join() below would wait forever.
  auto deadline = std::chrono::steady_clock::now() + kListenStartWaitMax;
  while (!server_->is_running() && !listen_done_.load()) {
    SYNOD_ASSERT_MSG(std::chrono::steady_clock::now() < deadline, "listen thread never ran");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  listen_thread_.join();
  server_.reset();
  logger_.Info("admin server stopped address={}", bound_address_);
}

namespace internal {

HttpResponse CallWithTimeoutImpl(const std::function<void(std::function<void()>)>& post,
                                 std::function<HttpResponse()> fn, int64_t timeout_ms) {
  SYNOD_ASSERT(timeout_ms >= 0);
  // The waiter keeps only the future; the posted task owns the promise. So a task that runs
  // after the waiter gave up writes into state it co-owns, and a task that `post` drops breaks
  // the promise, which wakes the waiter at once instead of at the timeout.
  struct Task {
    std::promise<HttpResponse> promise;
    std::function<HttpResponse()> fn;
    std::atomic<bool> ran{false};  // `post` may copy the closure; only the first run answers
  };
  auto task = std::make_shared<Task>();
  task->fn = std::move(fn);
  std::future<HttpResponse> future = task->promise.get_future();
  try {
    post([task] {
      if (task->ran.exchange(true)) return;
      std::string error;
      task->promise.set_value(InvokeNoThrow(task->fn, &error));
    });
  } catch (const std::exception& e) {
    return TextResponse(503, fmt::format("core unavailable: {}\n", e.what()));
  }
  task.reset();
  if (future.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return TextResponse(503, fmt::format("core busy: no answer within {} ms\n", timeout_ms));
  }
  try {
    return future.get();
  } catch (const std::future_error&) {
    return TextResponse(503, "core unavailable: the request was dropped\n");
  }
}

}  // namespace internal
}  // namespace synod::admin
