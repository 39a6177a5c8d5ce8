#!/usr/bin/env bash
# Real coding agents against `keel serve` on the demo model, offline: Claude Code (`claude -p`, Anthropic
# Messages), Codex CLI (`codex exec`, OpenAI Responses) and OpenCode (`opencode run`, OpenAI chat completions).
# Each must finish one turn with exit 0, and keel must have answered every request it got with a 2xx (its
# keel_http_requests_total counters) with no API error in the agent's output. The demo model writes nonsense;
# the protocol is what is tested.
#
# Usage: tests/agents/run.sh KEEL_BINARY [AGENT...]   (AGENT: claude codex opencode; default all three)
#   KEEL_AGENTS_INSTALL=0   skip an agent whose npm package is missing instead of installing (make test does this)
#   KEEL_AGENTS_LOGS=DIR    keep keel's log, the agents' output and keel's metrics in DIR
#
# Offline: keel and the agents run in a network namespace of their own (`unshare -rn`: loopback only), so no
# agent can reach its vendor (telemetry, updates, model catalogues) even where the machine could; the telemetry
# switches are set as well. Where user namespaces are not allowed the agents run in the host's network, with the
# switches only (said on stderr).
#
# The demo model's context is 2,048 tokens and Claude Code's first request alone is ~14,000 (its system prompt and
# 12 tools), so keel serves a copy of the demo directory whose config.json says 32,768 (weights linked, not
# copied): RoPE runs past the trained length and the text is no worse than nonsense.
set -euo pipefail
keel=$(realpath "$1")
shift
agents=("$@")
[ ${#agents[@]} -gt 0 ] || agents=(claude codex opencode)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$here/node_modules/.bin

need_install=0
for a in "${agents[@]}"; do [ -x "$bin/$a" ] || need_install=1; done
if [ "$need_install" = 1 ]; then
  if [ "${KEEL_AGENTS_INSTALL:-1}" = 0 ]; then
    echo "SKIP: agents not installed (cd tests/agents && npm ci, or make test-agents)"
    exit 0
  fi
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

work=$(mktemp -d)
logs=${KEEL_AGENTS_LOGS:-$work/logs}
mkdir -p "$logs"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# The demo model with a longer context (see above).
model=$work/model
mkdir -p "$model"
for f in "$root"/models/demo/*; do ln -s "$f" "$model/$(basename "$f")"; done
rm "$model/config.json"
python3 - "$root/models/demo/config.json" "$model/config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["max_position_embeddings"] = 32768
json.dump(config, open(sys.argv[2], "w"), indent=2)
EOF

# Everything below runs in one network namespace when it can.
inner=$work/inner.sh
cat >"$inner" <<'EOF'
#!/usr/bin/env bash
set -uo pipefail
ip link set lo up 2>/dev/null || true
exec "$AGENTS_DRIVER" "$@"
EOF
chmod +x "$inner"

export KEEL="$keel" MODEL_DIR="$model" WORK="$work" LOGS="$logs" BIN="$bin" HERE="$here"
export AGENTS_DRIVER="$here/drive.sh"
rc=0
if unshare -rn true 2>/dev/null; then
  unshare -rn "$inner" "${agents[@]}" || rc=$?
else
  echo "note: unshare -rn is not allowed here; the agents run in the host's network (telemetry switches only)" >&2
  "$inner" "${agents[@]}" || rc=$?
fi
exit $rc
