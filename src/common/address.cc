#include "common/address.h"

#include <fmt/format.h>

#include <charconv>

namespace synod {

Result<HostPort> SplitHostPort(std::string_view address, PortZero zero) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::InvalidArgument(fmt::format("address '{}' is not host:port", address));
  }
  std::string_view host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string_view port = address.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || port.empty() || ec != std::errc() || end != port.data() + port.size() ||
      value > 65535 || (value == 0 && zero == PortZero::kRefused)) {
    return Status::InvalidArgument(fmt::format("address '{}' has a bad host or port", address));
  }
  return HostPort{std::string(host), static_cast<uint16_t>(value)};
}

}  // namespace synod
