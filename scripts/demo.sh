#!/usr/bin/env bash
# Runs the demo: mock upstream LLM, tollgate (Badger in ./data, master key sk-1234)
# and a real Envoy on :4000. Ctrl-C stops everything.
# With WEBHOOK_URL set, webhook alerting is on (the seed's Event Webhook tab):
#   go run ./examples/webhookreceiver &   # prints every event it receives
#   WEBHOOK_URL=http://127.0.0.1:8090/ make demo
set -euo pipefail
cd "$(dirname "$0")/.."

envoy_bin=${ENVOY_BIN:-.venv/bin/envoy}
mkdir -p data
pids=()
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "stopping demo..."
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped."
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# wait_for URL: poll until it answers, at most 20 s.
wait_for() {
	for _ in $(seq 1 200); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	exit 1
}

# With WEBHOOK_URL set, a config.yaml in LiteLLM's format turns webhook alerting on
# (LiteLLM needs both the URL and alerting: ["webhook"]). The seed's models, "mistral"
# among them, are priced by the embedded table without one.
config_args=()
if [ -n "${WEBHOOK_URL:-}" ]; then
	config=data/demo-config.yaml
	printf 'general_settings:\n  alerting: ["webhook"]\n' > "$config"
	config_args=(--config "$config")
fi

bin/mockllm -addr 127.0.0.1:8081 > data/mockllm.log 2>&1 &
pids+=($!)
TOLLGATE_MASTER_KEY=${TOLLGATE_MASTER_KEY:-sk-1234} bin/tollgate --data-dir ./data "${config_args[@]}" > data/tollgate.log 2>&1 &
pids+=($!)
"$envoy_bin" -c envoy/envoy.yaml --log-level warn > data/envoy.log 2>&1 &
pids+=($!)

wait_for http://127.0.0.1:8081/__mock/stats
wait_for http://127.0.0.1:4001/health/liveliness
wait_for http://127.0.0.1:9901/ready

cat <<'MSG'

tollgate demo is up: Envoy on http://localhost:4000 (logs in ./data/*.log). Try:

  curl -s http://localhost:4000/chat/completions -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-1234' -d '{"model": "azure-gpt-3.5", "user": "ishaan3", "messages": [{"role": "user", "content": "what time is it"}]}'

  curl -s 'http://localhost:4000/customer/info?end_user_id=ishaan3' -H 'Authorization: Bearer sk-1234'

  curl -s http://localhost:4000/customer/new -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-1234' -d '{"user_id": "my-customer-id", "max_budget": "0"}'

MSG
if [ -n "${WEBHOOK_URL:-}" ]; then
	cat <<MSG
Webhook alerting is on: every tracked spend and budget event is POSTed to WEBHOOK_URL. The seed's test:

  curl -s http://localhost:4000/chat/completions -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-1234' -d '{"model": "mistral", "messages": [{"role": "user", "content": "What is the weather like in Boston today?"}], "user": "krrish12"}'

  curl -s 'http://localhost:4000/health/services?service=webhook' -H 'Authorization: Bearer sk-1234'
  curl -s http://127.0.0.1:4001/webhook/info -H 'Authorization: Bearer sk-1234'

MSG
else
	echo "Webhook alerting is off: set WEBHOOK_URL (e.g. to go run ./examples/webhookreceiver) before make demo to turn it on."
	echo
fi
echo "Press Ctrl-C to stop."

# Exit (and clean up) as soon as any process dies.
wait -n "${pids[@]}"
echo "a demo process exited; see ./data/*.log" >&2
exit 1
