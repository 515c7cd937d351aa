#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each, from its corpus in
# tests/fuzz/corpus/NAME (new finds are kept in build-fuzz/corpus/NAME).
set -euo pipefail
bin=${1:-build-fuzz/bin}
seconds=${2:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for target in "$bin"/*_fuzz; do
  name=$(basename "$target")
  work=$top/build-fuzz/corpus/$name
  mkdir -p "$work"
  seeds=$top/tests/fuzz/corpus/$name
  [ -d "$seeds" ] || seeds=
  echo "==> $name for ${seconds}s"
  if ! "$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
       -artifact_prefix="$top/build-fuzz/$name-" "$work" $seeds 2>"$top/build-fuzz/$name.log"; then
    echo "$name: FAILED (see build-fuzz/$name.log and the crash file next to it)"
    tail -20 "$top/build-fuzz/$name.log"
    status=1
  else
    grep -E "Done [0-9]+ runs" "$top/build-fuzz/$name.log" | tail -1 || true
  fi
done
exit $status
