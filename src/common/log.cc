#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace synod {

Logger Logger::Stderr(const std::string& name) {
  auto existing = spdlog::get(name);
  if (existing != nullptr) return Logger(existing);
  return Logger(spdlog::stderr_color_mt(name));
}

}  // namespace synod
