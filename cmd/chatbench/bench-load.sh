#!/usr/bin/env bash
# The standard load figures (BENCHMARKS.md): builds chatd and chatbench, starts
# a fresh chatd with its data in a temporary directory and its ports on
# loopback, runs each chatbench mode against it, and stops it. Every run is
# bounded by chatbench's -timeout; the whole script by BENCH_TIMEOUT.
#
# Sizes and ports come from the environment (defaults: the targets of issue
# 3, item 8):
#   BENCH_IDLE_N=19500 BENCH_PAIRS=500 BENCH_WINDOW=64 BENCH_DURATION=10s
#   BENCH_RATE=20000 BENCH_RATE_PAIRS=200 BENCH_LOGIN_CONCURRENCY=64
#   BENCH_HISTORY_PAIRS=200 BENCH_HISTORY_WINDOW=32 (recording with save_to_history, issue 4)
#   BENCH_OFFLINE_N=1000 BENCH_SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
#   BENCH_PORT_BASE=25000 (REST on +443, XMPP on +222, direct TLS on +223)
#   BENCH_MODES="idle pairs rate login history offline"
#   BENCH_OUT=DIR: also keep each run's JSON result there
#   BENCH_CHATD_ENV="CHATD_XMPP_STANZA_RATE=…": extra chatd configuration
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${BENCH_IDLE_N:=19500}" "${BENCH_PAIRS:=500}" "${BENCH_WINDOW:=64}" "${BENCH_DURATION:=10s}"
: "${BENCH_RATE:=20000}" "${BENCH_RATE_PAIRS:=200}" "${BENCH_LOGIN_CONCURRENCY:=64}" "${BENCH_OFFLINE_N:=1000}"
: "${BENCH_HISTORY_PAIRS:=200}" "${BENCH_HISTORY_WINDOW:=32}"
: "${BENCH_SOURCES:=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}" "${BENCH_PORT_BASE:=25000}"
: "${BENCH_MODES:=idle pairs rate login history offline}" "${BENCH_TIMEOUT:=1800}" "${BENCH_CHATD_ENV:=}"
GO=${GO:-go}

# Each process may need a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open files: $(ulimit -n) (the idle figure needs BENCH_IDLE_N + ~100)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/chatd-bench.XXXXXX")
chatd_pid=""
cleanup() {
	if [ -n "$chatd_pid" ] && kill -0 "$chatd_pid" 2>/dev/null; then
		kill -TERM "$chatd_pid"
		wait "$chatd_pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

$GO build -o "$dir/" ./cmd/chatd ./cmd/chatbench

api_port=$((BENCH_PORT_BASE + 443)) xmpp_port=$((BENCH_PORT_BASE + 222)) tls_port=$((BENCH_PORT_BASE + 223))
export CHATD_DATA_DIR="$dir/data" CHATD_LOG_LEVEL=warn \
	CHATD_API_LISTEN=127.0.0.1:$api_port CHATD_XMPP_LISTEN=127.0.0.1:$xmpp_port \
	CHATD_XMPP_TLS_LISTEN=127.0.0.1:$tls_port CHATD_XMPP_WEBSOCKET_LISTEN="" CHATD_TURN_ENABLED=false

# An application first, so that its credentials can be read from JSON.
"$dir/chatd" app create -name chatbench >"$dir/app.json"
key=$(sed -n 's/.*"auth_key": "\(.*\)".*/\1/p' "$dir/app.json")
secret=$(sed -n 's/.*"auth_secret": "\(.*\)".*/\1/p' "$dir/app.json")
app=$(sed -n 's/.*"id": \([0-9]*\).*/\1/p' "$dir/app.json")

# shellcheck disable=SC2086 # BENCH_CHATD_ENV is a list of assignments
env $BENCH_CHATD_ENV "$dir/chatd" 2>"$dir/chatd.log" &
chatd_pid=$!
for _ in $(seq 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$xmpp_port") 2>/dev/null; then break; fi
	kill -0 "$chatd_pid" 2>/dev/null || { cat "$dir/chatd.log"; exit 1; }
	sleep 0.1
done

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); chatd and chatbench share it"
common=(-addr "127.0.0.1:$xmpp_port" -domain localhost -api "https://127.0.0.1:$api_port" -app "$app"
	-key "$key" -secret "$secret" -users-out "$dir/users.txt" -pid "$chatd_pid" -sources "$BENCH_SOURCES")
bench() {
	local name=$1
	shift
	echo "== chatbench $*"
	if [ -n "${BENCH_OUT:-}" ]; then
		mkdir -p "$BENCH_OUT"
		"$dir/chatbench" "$@" "${common[@]}" -json | tee "$BENCH_OUT/$name.json"
	else
		"$dir/chatbench" "$@" "${common[@]}"
	fi
}

deadline=$((SECONDS + BENCH_TIMEOUT))
for mode in $BENCH_MODES; do
	left=$((deadline - SECONDS))
	if [ "$left" -le 0 ]; then
		echo "BENCH_TIMEOUT reached before $mode"
		exit 1
	fi
	t=(-timeout "${left}s")
	case $mode in
	idle) bench idle -mode idle -n "$BENCH_IDLE_N" -concurrency 64 "${t[@]}" ;;
	pairs) bench pairs -mode pairs -pairs "$BENCH_PAIRS" -window "$BENCH_WINDOW" -duration "$BENCH_DURATION" "${t[@]}" ;;
	rate) bench rate -mode rate -pairs "$BENCH_RATE_PAIRS" -rate "$BENCH_RATE" -duration "$BENCH_DURATION" "${t[@]}" ;;
	login) bench login -mode login -concurrency "$BENCH_LOGIN_CONCURRENCY" -duration "$BENCH_DURATION" "${t[@]}" ;;
	history) bench history -mode pairs -history -pairs "$BENCH_HISTORY_PAIRS" -window "$BENCH_HISTORY_WINDOW" -duration "$BENCH_DURATION" "${t[@]}" ;;
	offline) bench offline -mode offline -n "$BENCH_OFFLINE_N" "${t[@]}" ;;
	*)
		echo "unknown mode $mode"
		exit 1
		;;
	esac
done
if [ -s "$dir/chatd.log" ]; then
	echo "== chatd warnings"
	tail -20 "$dir/chatd.log"
fi
