#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 60) from the seeds in seeds/<target>, growing a
# working corpus in corpus/<target> (not kept in git). Stops at the first crash, which
# libFuzzer writes to artifacts/<target>/.
#
#   fuzz/run.sh [seconds]      (needs: rustup toolchain nightly, cargo install cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
for t in sse provider_reply provider_stream cursor credentials schema; do
  mkdir -p "corpus/$t"
  echo "== $t (${secs}s)"
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 |
    grep -E "Done [0-9]+ runs|ERROR|panicked|artifact" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "$t failed"; exit 1; }
done
echo "all targets ran clean"
