#include "common/assert.h"

#include <cstdio>
#include <cstdlib>

namespace synod::internal {

void AssertFail(const char* condition, const char* file, int line, const char* msg) {
  // fprintf rather than the logger: the logger may be the thing that is broken, and the
  // message must reach stderr before abort() even if nothing else works.
  if (msg != nullptr) {
    std::fprintf(stderr, "assertion failed: %s (%s) at %s:%d\n", condition, msg, file, line);
  } else {
    std::fprintf(stderr, "assertion failed: %s at %s:%d\n", condition, file, line);
  }
  std::fflush(stderr);
  std::abort();
}

}  // namespace synod::internal
