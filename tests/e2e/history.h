// A linearizability history over the e2e suite's clusters (docs/check.md): clients doing random
// GET / SET / DEL on a few keys through the nodes while a test's faults run, their history then
// checked by `synod check`.
#pragma once

#include <functional>
#include <vector>

#include "cluster_harness.h"

namespace synod::e2e {

// Six clients (each through the nodes `via`, in turn from a different one; all of the
// cluster's when empty) on `keys` keys, pausing `pause_ms` after each operation; `faults` runs on
// the calling thread meanwhile. Then the history goes to `synod check`, which must find it
// linearizable (gtest expectations). With `script_cas_percent`, that share of the operations
// are compare-and-sets written as an EVAL script.
void CheckHistoryUnderFaults(TestCluster& c, int keys, const std::function<void()>& faults,
                             std::vector<uint64_t> via = {}, int pause_ms = 2,
                             int script_cas_percent = 0);

}  // namespace synod::e2e
