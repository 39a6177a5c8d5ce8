#!/usr/bin/env bash
# Runs the official clients' tool round trips (tools.fake.mjs) against fake_serve: keel's HTTP server over a
# scripted generator (tests/server/fake_serve.cpp). Installs the npm clients if needed, as run.sh does.
# Usage: tests/server/run_fake.sh FAKE_SERVE_BINARY
set -euo pipefail
fake=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ ! -d node_modules/openai ] || [ ! -d node_modules/@anthropic-ai/sdk ]; then
  npm ci --no-audit --no-fund --silent
fi
log=$(mktemp)
"$fake" >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$log")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "fake_serve exited before listening"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "fake_serve did not listen"; exit 1; }
rc=0
KEEL_URL="http://127.0.0.1:$port" node --test "$here"/tools.fake.mjs || rc=$?
kill -TERM "$server"
wait "$server" || { cat "$log"; echo "fake_serve failed"; rc=1; }
trap - EXIT
rm -f "$log"
exit $rc
