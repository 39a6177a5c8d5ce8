#!/usr/bin/env bash
# Run by tests/agents/run.sh (inside its network namespace): starts keel serve, runs each agent once, checks both
# logs. Environment from run.sh: KEEL, MODEL_DIR, WORK, LOGS, BIN.
set -uo pipefail
key=keel-agents-key
name=keel-demo
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
timeout_s=${KEEL_AGENTS_TIMEOUT:-600}

"$KEEL" serve "$MODEL_DIR" --host 127.0.0.1 --port "$port" --api-key "$key" --served-model-name "$name" \
  --max-num-seqs 4 >"$LOGS/keel.log" 2>&1 &
server=$!
stop_server() { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null; }
trap stop_server EXIT
for _ in $(seq 1 600); do
  curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$LOGS/keel.log"; echo "FAIL: keel serve exited before listening"; exit 1; }
  sleep 0.2
done

# keel_http_requests_total{route,status} lines with a status of 400 or more.
http_errors() {
  curl -sf -H "Authorization: Bearer $key" "$url/metrics" | grep '^keel_http_requests_total' |
    grep -E 'status="[45][0-9][0-9]"' || true
}
# Requests answered 2xx on one route.
answered() {
  curl -sf -H "Authorization: Bearer $key" "$url/metrics" |
    awk -v r="route=\"$1\"" 'index($0, "keel_http_requests_total{") == 1 && index($0, r) && $0 ~ /status="2/ {n += $2} END {print n + 0}'
}

# What agents print when the API answered badly (their own wording, checked in their output).
api_error_pattern='API Error|APICallError|invalid_request_error|status code [45][0-9][0-9]|unexpected status [45][0-9][0-9]|stream disconnected|error decoding response'

failed=0
# Prints the verdict; fails (status 1) unless it is PASS or SKIP.
report() {
  echo "$1: $2"
  case $2 in PASS | SKIP*) return 0 ;; *) return 1 ;; esac
}

run_agent() {  # NAME ROUTE COMMAND... : runs the agent, then checks exit code, output and keel's counters
  local agent=$1 route=$2
  shift 2
  local before_errors before_ok rc=0
  before_errors=$(http_errors)
  before_ok=$(answered "$route")
  local start=$SECONDS
  timeout "$timeout_s" "$@" >"$LOGS/$agent.out" 2>"$LOGS/$agent.err" </dev/null || rc=$?
  local took=$((SECONDS - start))
  local after_errors after_ok
  after_errors=$(http_errors)
  after_ok=$(answered "$route")
  echo "--- $agent (exit $rc, ${took}s, $((after_ok - before_ok)) requests answered on $route)"
  tail -n 5 "$LOGS/$agent.out" | cut -c1-200
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$LOGS/$agent.err"
    report "$agent" "FAIL: exit $rc"
  elif [ "$after_errors" != "$before_errors" ]; then
    echo "$after_errors"
    report "$agent" "FAIL: keel answered a request with an error status"
  elif [ "$after_ok" -le "$before_ok" ]; then
    report "$agent" "FAIL: no request reached $route"
  elif grep -Eiq "$api_error_pattern" "$LOGS/$agent.out" "$LOGS/$agent.err"; then
    grep -Eih "$api_error_pattern" "$LOGS/$agent.out" "$LOGS/$agent.err" | head -5
    report "$agent" "FAIL: API error in the agent's output"
  else
    report "$agent" PASS
  fi
}

prompt="Say hello in five words."

for agent in "$@"; do
  home=$WORK/home-$agent
  mkdir -p "$home/project"
  case $agent in
    claude)
      (cd "$home/project" && export HOME=$home ANTHROPIC_BASE_URL=$url ANTHROPIC_API_KEY=$key ANTHROPIC_MODEL=$name \
        ANTHROPIC_SMALL_FAST_MODEL=$name ANTHROPIC_DEFAULT_HAIKU_MODEL=$name ANTHROPIC_DEFAULT_SONNET_MODEL=$name \
        ANTHROPIC_DEFAULT_OPUS_MODEL=$name DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
        DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1 &&
        run_agent claude /v1/messages "$BIN/claude" -p "$prompt" --max-turns 2) || failed=1
      ;;
    codex)
      status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H 'content-type: application/json' \
        -d "{\"model\":\"$name\",\"input\":\"hi\",\"max_output_tokens\":1}" "$url/v1/responses")
      if [ "$status" = 404 ]; then
        report codex "SKIP: keel has no /v1/responses yet (Codex CLI speaks only the Responses API)" || failed=1
        continue
      fi
      mkdir -p "$home/codex"
      cat >"$home/codex/config.toml" <<EOF
model = "$name"
model_provider = "keel"
check_for_update_on_startup = false
# keel runs no hosted tools: Codex would otherwise send web_search, which /v1/responses refuses.
web_search = "disabled"

[model_providers.keel]
name = "keel"
base_url = "$url/v1"
env_key = "KEEL_API_KEY"
wire_api = "responses"
EOF
      (cd "$home/project" && export HOME=$home CODEX_HOME=$home/codex KEEL_API_KEY=$key &&
        run_agent codex /v1/responses "$BIN/codex" exec --skip-git-repo-check "$prompt") || failed=1
      ;;
    opencode)
      cat >"$home/project/opencode.json" <<EOF
{
  "\$schema": "https://opencode.ai/config.json",
  "autoupdate": false,
  "share": "disabled",
  "model": "keel/$name",
  "provider": {
    "keel": {
      "npm": "@ai-sdk/openai-compatible",
      "name": "keel",
      "options": { "baseURL": "$url/v1", "apiKey": "$key" },
      "models": { "$name": { "name": "keel demo", "limit": { "context": 32768, "output": 4096 } } }
    }
  }
}
EOF
      (cd "$home/project" && export HOME=$home XDG_CONFIG_HOME=$home/.config XDG_DATA_HOME=$home/.local/share \
        XDG_CACHE_HOME=$home/.cache XDG_STATE_HOME=$home/.local/state OPENCODE_DISABLE_AUTOUPDATE=1 \
        OPENCODE_DISABLE_MODELS_FETCH=1 OPENCODE_DISABLE_SHARE=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1 \
        OPENCODE_DISABLE_DEFAULT_PLUGINS=1 OPENCODE_DISABLE_CLAUDE_CODE=1 OPENCODE_DISABLE_TERMINAL_TITLE=1 &&
        run_agent opencode /v1/chat/completions "$BIN/opencode" run -m "keel/$name" "$prompt") || failed=1
      ;;
    *)
      report "$agent" "FAIL: unknown agent (claude, codex, opencode)" || failed=1
      ;;
  esac
done
exit $failed
