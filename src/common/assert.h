// SYNOD_ASSERT: invariant checks that stay on in every build type.
//
// Assertions are for programmer errors (a violated invariant, a broken precondition), never
// for expected failures such as bad input or I/O errors, which return a Status. A failed
// assertion prints the condition, file and line, then aborts so a core dump or the sanitizer
// shows the stack. They are deliberately not compiled out in release builds (TigerBeetle):
// a node that keeps running with a broken invariant can corrupt replicated state.
#pragma once

namespace synod::internal {
[[noreturn]] void AssertFail(const char* condition, const char* file, int line, const char* msg);
}  // namespace synod::internal

#define SYNOD_ASSERT(cond)                                               \
  do {                                                                   \
    if (!(cond)) [[unlikely]] {                                          \
      ::synod::internal::AssertFail(#cond, __FILE__, __LINE__, nullptr); \
    }                                                                    \
  } while (0)

// SYNOD_ASSERT_MSG adds a short static explanation to the failure line.
#define SYNOD_ASSERT_MSG(cond, msg)                                    \
  do {                                                                 \
    if (!(cond)) [[unlikely]] {                                        \
      ::synod::internal::AssertFail(#cond, __FILE__, __LINE__, (msg)); \
    }                                                                  \
  } while (0)

#define SYNOD_UNREACHABLE() \
  ::synod::internal::AssertFail("unreachable", __FILE__, __LINE__, nullptr)
