// Network addresses as users write them: "host:port", "1.2.3.4:port" or "[::1]:port".
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace synod {

struct HostPort {
  std::string host;  // without IPv6 brackets, as resolvers want it
  uint16_t port = 0;
};

enum class PortZero : uint8_t {
  kAllowed,  // "any free port", for addresses we listen on
  kRefused,  // addresses others dial
};

// Splits an address at its last ':'. kInvalidArgument, naming the address, when there is no
// host, or the port is not a decimal number in 0..65535 (1..65535 with PortZero::kRefused).
Result<HostPort> SplitHostPort(std::string_view address, PortZero zero = PortZero::kAllowed);

}  // namespace synod
