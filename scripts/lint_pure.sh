#!/usr/bin/env bash
# Fails when a pure folder touches the world directly: wall clocks, threads, sockets, files,
# Asio or unseeded randomness. Pure code goes through the env/ seam instead (DESIGN.md).
# Usage: lint_pure.sh [ROOT]   (ROOT defaults to the repository)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# Layering (DESIGN.md): env/ sits below raft/ and everything above it, so nothing in env/
# (tests aside) includes a higher layer.
if [ -d src/env ]; then
  layers='raft|storage|kv|cluster|compute|server|sim|check|cli|loadgen'
  up=$(grep -rnE "#include \"($layers)/" src/env --include='*.h' --include='*.cc' |
         grep -v '_test\.cc:' || true)
  if [ -n "$up" ]; then
    echo "lint: env/ includes a higher layer:"
    echo "$up"
    exit 1
  fi
fi

pure=()
for d in src/raft src/kv src/sim src/check src/compute src/cluster/logic; do
  [ -d "$d" ] && pure+=("$d")
done
[ ${#pure[@]} -eq 0 ] && exit 0

pattern='std::chrono::(system|steady|high_resolution)_clock|std::random_device|[^_a-zA-Z.>]rand\(|srand\(|std::thread|std::this_thread|std::async|asio::|#include <(filesystem|thread|fstream)>|#include <(sys/socket|netinet/in|unistd|fcntl)\.h>|\bfopen\(|\btime\(NULL\)|\btime\(nullptr\)'

# Exempt: tests. (The Raft script driver's file-reading front end lives in tools/.)
hits=$(grep -rnE "$pattern" "${pure[@]}" --include='*.h' --include='*.cc' | grep -v '_test\.cc:' || true)
if [ -n "$hits" ]; then
  echo "lint: non-deterministic calls in a pure folder (use the env/ seam):"
  echo "$hits"
  exit 1
fi
echo "lint: pure folders clean (${pure[*]})"
