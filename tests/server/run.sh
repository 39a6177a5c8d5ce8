#!/usr/bin/env bash
# Runs the official-client tests: installs the npm clients if needed, starts `keel serve` on a free loopback
# port with an API key, runs `node --test`, then stops the server with SIGTERM and checks it exits 0.
# Usage: tests/server/run.sh KEEL_BINARY [MODEL_DIR]   (MODEL_DIR defaults to the bundled demo model)
# KEEL_TEST_FILES: the test files to run (default *.test.mjs); KEEL_SERVE_ARGS: serve flags (default --max-num-seqs 8).
set -euo pipefail
keel=$(realpath "$1")
model_dir=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ ! -d node_modules/openai ] || [ ! -d node_modules/@anthropic-ai/sdk ]; then
  npm ci --no-audit --no-fund --silent
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$keel" serve $model_dir --host 127.0.0.1 --port "$port" --api-key test-key --served-model-name keel-test --served-model-name keel-alias \
  ${KEEL_SERVE_ARGS:---max-num-seqs 8} >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "keel serve exited before listening"; exit 1; }
  sleep 0.1
done
rc=0
KEEL_URL="http://127.0.0.1:$port" KEEL_API_KEY=test-key KEEL_MODEL=keel-test node --test ${KEEL_TEST_FILES:-"$here"/*.test.mjs} || rc=$?
kill -TERM "$server"
server_rc=0
wait "$server" || server_rc=$?
trap - EXIT
if [ "$server_rc" -ne 0 ]; then
  cat "$log"
  echo "keel serve exited with $server_rc after SIGTERM (expected 0)"
  rc=1
fi
rm -f "$log"
exit $rc
