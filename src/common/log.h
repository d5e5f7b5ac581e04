// Logging on spdlog: one structured line per event.
//
// Every line carries the component ("raft", "node", ...) and, inside a node, the node id, as
// key=value pairs so that logs of several nodes can be merged and grepped. The pure layers
// (raft/, kv/, ...) log through a Logger passed in by their owner, never a global, so a
// simulation can give every simulated node its own logger and silence them all at once.
//
// Thread-safety: spdlog loggers are thread-safe; Logger is a cheap copyable handle.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace synod {

class Logger {
 public:
  // A logger that drops everything (the default for pure components and tests).
  Logger() = default;
  explicit Logger(std::shared_ptr<spdlog::logger> impl, std::string prefix = {})
      : impl_(std::move(impl)), prefix_(std::move(prefix)) {}

  // A logger that writes to stderr with the given name (created once per name).
  static Logger Stderr(const std::string& name);

  // Returns a logger whose lines start with `prefix` (for example "node=3 ").
  Logger With(const std::string& prefix) const { return Logger(impl_, prefix_ + prefix); }

  bool enabled(spdlog::level::level_enum level) const {
    return impl_ != nullptr && impl_->should_log(level);
  }

  template <typename... Args>
  void Info(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::info, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void Warn(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::warn, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void Debug(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::debug, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void Error(fmt::format_string<Args...> f, Args&&... args) const {
    Log(spdlog::level::err, f, std::forward<Args>(args)...);
  }

 private:
  template <typename... Args>
  void Log(spdlog::level::level_enum level, fmt::format_string<Args...> f, Args&&... args) const {
    if (!enabled(level)) return;
    impl_->log(level, "{}{}", prefix_, fmt::format(f, std::forward<Args>(args)...));
  }

  std::shared_ptr<spdlog::logger> impl_;
  std::string prefix_;
};

}  // namespace synod
