// The admin HTTP server of a node: /metrics for Prometheus, plus status and control routes the
// node registers (JSON mostly). Built on cpp-httplib, which parses HTTP and runs a small
// thread pool; this class adds exact-path routing with 404/405 answers, a route index at "/",
// a bound on request bodies, and a wall between handler exceptions and the library.
//
// Handlers run on the server's threads, never on the node's core thread. A handler that needs
// core state hops over with CallWithTimeout() below, so a wedged core turns into a 503 rather
// than a hung admin port.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace synod::admin {

class Registry;

struct AdminOptions {
  // "host:port" to listen on ("[v6addr]:port" for IPv6). Port 0 picks a free port; read it
  // back with bound_address(). The default keeps the admin port off the network.
  std::string address = "127.0.0.1:0";
  // Threads serving requests. Two lets /metrics answer while a slow route waits on the core.
  int threads = 2;
  // How long a route may wait for the core thread before answering 503. The server cannot
  // interrupt a handler; routes read it back with options() and pass it to CallWithTimeout().
  // Keep it well under Prometheus' scrape timeout (10 s by default).
  int64_t handler_timeout_ms = 2000;
  // Larger request bodies are refused with 413 before any handler sees them, bounding the
  // memory one request can take. Admin bodies are small commands; 1 MiB is generous.
  size_t request_body_bytes_max = 1 << 20;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ... ("HEAD" is served by the GET route)
  std::string path;    // without the query string
  std::map<std::string, std::string> params;  // query (and form) parameters; first one wins
  std::string body;
};

// Called on a server thread. Exceptions are caught and answered with 500, but handlers
// should not throw: the project reports errors as values.
using Handler = std::function<HttpResponse(const HttpRequest&)>;

// Convenience responses.
HttpResponse TextResponse(int status, std::string body);
HttpResponse JsonResponse(int status, std::string json_body);
// A handler that renders `registry` for Prometheus. REQUIRES: `registry` outlives the server.
Handler MetricsHandler(const Registry* registry);

// The admin HTTP server of one node.
//
// Lifecycle: construct, Handle() every route, Start(), ..., Stop() (or destroy).
// Ownership: owns its listening socket and serving threads; handlers are copied in.
// Thread-safety: Handle(), Start(), Stop() and the destructor are called by the owner from one
// thread. Handlers run concurrently on up to `threads` server threads and must be thread-safe.
class AdminServer {
 public:
  AdminServer(AdminOptions opts, Logger logger);
  ~AdminServer();  // calls Stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Routes requests with exactly this method and path (no query string, no patterns) to `h`.
  // A GET route also answers HEAD. "/" is an index of the routes unless registered here.
  // REQUIRES: before Start(); method is GET, POST, PUT, PATCH or DELETE; path starts with '/';
  // (method, path) not registered yet.
  void Handle(std::string method, std::string path, Handler h);

  // Binds the address and starts serving on background threads. Returns InvalidArgument for a
  // malformed address and IoError (naming the address and the OS reason) if the bind fails,
  // for example because the port is taken; the server is then unusable and Stop() is a no-op.
  // REQUIRES: not called before on this object.
  Status Start();

  // Stops accepting, finishes requests in progress, and joins the threads. Idempotent.
  void Stop();

  // "host:port" with the actual port once Start() succeeded; empty before.
  std::string bound_address() const { return bound_address_; }
  const AdminOptions& options() const { return opts_; }

 private:
  struct Route {
    std::string method;
    std::string path;
    Handler handler;
  };

  void Serve(const httplib::Request& req, httplib::Response& res) const;
  HttpResponse Route404() const;
  HttpResponse IndexPage() const;
  void ConfigureServer();

  const AdminOptions opts_;
  const Logger logger_;
  std::vector<Route> routes_;  // frozen at Start(); read concurrently by server threads
  std::unique_ptr<httplib::Server> server_;
  std::thread listen_thread_;
  std::atomic<bool> listen_done_{false};  // set by listen_thread_ as it exits
  std::string bound_address_;
  bool started_ = false;
};

namespace internal {
// The non-template part of CallWithTimeout().
HttpResponse CallWithTimeoutImpl(const std::function<void(std::function<void()>)>& post,
                                 std::function<HttpResponse()> fn, int64_t timeout_ms);
}  // namespace internal

// Runs `fn` on another thread (typically the node's core thread) and waits for its answer.
//
// `post` must schedule its argument to run once on that thread, or drop it (for example when
// the core is shutting down). Returns fn's result, 500 if fn throws, 503 "core unavailable"
// if `post` dropped it, and 503 "core busy: no answer within N ms" if it has not run within
// `timeout_ms`. On timeout `fn` may still run later: the result slot it writes is shared, so
// that is safe, but `fn` itself must own (capture by value) everything it touches, because the
// HTTP request that asked for it is gone by then.
template <class F>
HttpResponse CallWithTimeout(std::function<void(std::function<void()>)> post, F fn,
                             int64_t timeout_ms) {
  static_assert(std::is_invocable_r_v<HttpResponse, F&>, "fn must return an HttpResponse");
  return internal::CallWithTimeoutImpl(post, std::function<HttpResponse()>(std::move(fn)),
                                       timeout_ms);
}

}  // namespace synod::admin
