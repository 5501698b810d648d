#!/usr/bin/env bash
# API conformance: schemathesis (from PyPI) against the served /openapi.json, as a signed-in
# user of a fresh server on SQLite. Every route is exercised with generated input; it fails on
# any 5xx, any response that does not match its documented schema or status, any error that
# is not in API.md's shape, and any schema-valid request refused for a reason the schema could
# have stated (scripts/conformance_hooks.py lists the refusals a schema cannot state).
#
#   scripts/conformance.sh [max-examples per operation, default 50] [agentry binary]
#
# Needs: python3 with `pip install schemathesis` (4.x), and a built binary (default
# target/release/agentry, else target/debug/agentry).
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-50}"
bin="${2:-}"
if [ -z "$bin" ]; then
  if [ -x target/release/agentry ]; then bin=target/release/agentry; else bin=target/debug/agentry; fi
fi
command -v st >/dev/null || { echo "schemathesis is not installed: pip install schemathesis" >&2; exit 2; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
AGENTRY_DATA_DIR="$dir" AGENTRY_LISTEN="127.0.0.1:$port" RUST_LOG=error \
  AGENTRY_RATE_LIMIT_API=1000000 AGENTRY_RATE_LIMIT_AUTH=1000000 \
  "$bin" serve > "$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.05
done
token=$(curl -fsS -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email": "conformance@example.com", "password": "correct horse battery", "name": "Conformance"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

SCHEMATHESIS_HOOKS=scripts/conformance_hooks.py st run "$base/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks ignored_auth,positive_data_acceptance \
  --max-examples "$examples" \
  --workers 2 \
  --request-timeout 120 \
  --exclude-path-regex '/auth/(logout|sessions)|/ws$' \
  --suppress-health-check all \
  "${@:3}"
