#!/bin/sh
# Drives the standard health Check and DecisionService.Check with ghz (pinned in tools/ghz/go.mod)
# on the same server, one after the other, at concurrency 1 and 32, over one connection, using the
# server's reflection. ghz's own client cost (hundreds of µs per call) dominates its latencies; use
# bench/load for the server's share. Usage:
#
#   bench/ghz.sh ADDR TOKENS_FILE [CALLS]
#
# with TOKENS_FILE from `go run ./bench/load seed` (the first token is used for every call), and
# TREATY_CREDENTIAL_FILE naming the server's credential (for example DATA/admin.credential): Check
# and reflection need an authenticated caller.
set -eu
addr=${1:?usage: bench/ghz.sh ADDR TOKENS_FILE [CALLS]}
tokens=${2:?usage: bench/ghz.sh ADDR TOKENS_FILE [CALLS]}
calls=${3:-20000}
root=$(cd "$(dirname "$0")/.." && pwd)
ghz() { (cd "$root" && go tool -modfile=tools/ghz/go.mod ghz "$@"); }
token=$(head -n 1 "$tokens")
cred=$(cat "${TREATY_CREDENTIAL_FILE:?set TREATY_CREDENTIAL_FILE to the server's admin.credential}")
auth="{\"authorization\":\"Bearer $cred\"}"
data=$(mktemp)
trap 'rm -f "$data"' EXIT
printf '{"token":"%s","action":"read","resource":"api"}' "$token" >"$data"
for c in 1 32; do
	for call in grpc.health.v1.Health/Check treaty.v1.DecisionService/Check; do
		if [ "$call" = grpc.health.v1.Health/Check ]; then set -- -d '{}'; else set -- -D "$data"; fi
		echo "== $call c=$c"
		# The JSON report, not the summary: the summary rounds latencies to 10 µs, which is most
		# of the difference between the two calls at one caller.
		ghz --insecure --metadata "$auth" --reflect-metadata "$auth" --call "$call" "$@" -c "$c" --connections 1 -n "$calls" --format json "$addr" 2>&1 |
			tr '{' '\n' | awk -F'[:,]' '
				/^"percentage":50,/ { printf "p50 %.1f us, ", $4 / 1000 }
				/^"percentage":99,/ { printf "p99 %.1f us", $4 / 1000 }
				/"rps"/ { for (i = 1; i < NF; i++) if ($i == "\"rps\"") printf "%.0f calls/s, ", $(i + 1) }
				END { print "" }' || true
	done
done
