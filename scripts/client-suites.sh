#!/usr/bin/env bash
# Runs client libraries' own integration suites against klite: `make
# client-suites` (README "Client suites"). Each suite is copied out of the
# module cache at the version klite's go.mod pins (the cache is read-only),
# gets a fresh broker (bin/klite, empty -wal) configured as the suite's
# docker setup configures Kafka, and is run with `go test -json`; a summary
# line per suite (run, passed, failed, skipped) and the failed and skipped
# tests follow. Logs stay in $SUITES_DIR.
#
#   scripts/client-suites.sh [kgo] [kafka-go] [confluent] [confluent-848]
#
# KLITE_BIN (default bin/klite, built by make), SUITES_DIR (default a new
# temp dir), SUITES_TIMEOUT (go test -timeout per suite, default 20m),
# SUITES_RUN_<suite> (a -run filter, e.g. SUITES_RUN_kafka_go='TestConn').
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${KLITE_BIN:-$root/bin/klite}
work=${SUITES_DIR:-$(mktemp -d /tmp/klite-suites.XXXXXX)}
timeout=${SUITES_TIMEOUT:-20m}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(kgo kafka-go confluent confluent-848)
mkdir -p "$work"
pid=

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_broker() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
	fi
}
trap stop_broker EXIT

# start_broker NAME ARGS...: a fresh klite with its log in $work/NAME.klite.log;
# waits for its ready line.
start_broker() {
	local name=$1
	shift
	rm -rf "$work/$name.wal"
	"$bin" -wal "$work/$name.wal" "$@" >"$work/$name.klite.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		grep -q ' ready ' "$work/$name.klite.log" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "klite did not start for $name:" >&2
	cat "$work/$name.klite.log" >&2
	exit 1
}

# copy_module MODULE NAME: a writable copy of MODULE's cached source at the
# version klite's go.mod pins.
copy_module() {
	local dir
	dir=$(cd "$root" && go list -m -f '{{.Dir}}' "$1")
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		(cd "$root" && go mod download "$1")
		dir=$(cd "$root" && go list -m -f '{{.Dir}}' "$1")
	fi
	rm -rf "${work:?}/$2"
	cp -r "$dir" "$work/$2"
	chmod -R u+w "$work/$2"
}

# summarize NAME: counts from $work/NAME.json (go test -json), top-level
# tests and subtests alike.
summarize() {
	python3 - "$work/$1.json" "$1" <<'EOF'
import json, sys
path, name = sys.argv[1], sys.argv[2]
res, out = {}, {}
for line in open(path, errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    t = e.get("Test")
    if not t:
        continue
    a = e.get("Action")
    if a in ("pass", "fail", "skip"):
        res[t] = a
    elif a == "output":
        out.setdefault(t, []).append(e.get("Output", ""))
n = {k: sum(1 for v in res.values() if v == k) for k in ("pass", "fail", "skip")}
print(f"== {name}: {len(res)} run, {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped")
for t, a in sorted(res.items()):
    if a == "fail":
        print(f"   FAIL {t}")
    if a == "skip":
        why = [l.strip() for l in out.get(t, []) if ".go:" in l]
        said = [l for l in why if any(w in l.lower() for w in ("skip", "support", "not set"))]
        print(f"   SKIP {t}: {(said or why or [''])[0]}")
EOF
}

# run_suite NAME DIR PKG SKIP ENV...: go test -json in the copied module,
# leaving out the tests SKIP matches (go test -skip; empty: none).
run_suite() {
	local name=$1 dir=$2 pkg=$3 skip=$4
	shift 4
	local filter_var="SUITES_RUN_${name//-/_}"
	local run=${!filter_var:-}
	echo "running $name ($pkg in $dir${run:+, -run $run}); log $work/$name.json" >&2
	(cd "$dir" && env "$@" GOFLAGS=-mod=mod go test -json -count=1 -timeout "$timeout" ${run:+-run "$run"} ${skip:+-skip "$skip"} "$pkg" >"$work/$name.json" 2>"$work/$name.stderr") || true
}

if [ ! -x "$bin" ]; then
	(cd "$root" && make build)
fi
# SASL listeners' users (PLAIN and SCRAM).
printf 'testuser:testpass\nadminplain:admin-secret\nscram:scram-secret\nadminscram256:admin-secret-256\nadminscram512:admin-secret-512\n' >"$work/users"

for s in "${suites[@]}"; do
	case $s in
	kgo)
		# franz-go's kgo suite (KGO_SEEDS; SCRAM on a second listener).
		copy_module github.com/twmb/franz-go franz-go
		p=$(free_port)
		ps=$(free_port)
		start_broker kgo -listen "127.0.0.1:$p,SASL_PLAINTEXT://127.0.0.1:$ps" -sasl-users-file "$work/users"
		run_suite kgo "$work/franz-go/pkg/kgo" . "" KGO_SEEDS="127.0.0.1:$p" KGO_TEST_RF=1 KGO_TEST_RECORDS=20000 \
			KGO_TEST_SCRAM=scram:scram-secret:512 KGO_TEST_SCRAM_SEEDS="127.0.0.1:$ps"
		stop_broker
		summarize kgo
		;;
	kafka-go)
		# segmentio/kafka-go dials localhost:9092 (PLAINTEXT) and :9093
		# (SASL_PLAINTEXT: adminplain, and Kafka 4's adminscram256 and
		# adminscram512) and expects what its docker-compose.yml sets up:
		# brokers advertised as localhost, an authorizer allowing everyone
		# when no ACL matches, message.max.bytes 200000000. KAFKA_VERSION
		# 4.0.0: klite follows Kafka 4.x. Left out: the three
		# TestReaderConsumerGroup cases that call getOffsets, whose
		# ConsumerGroup has no connect func (a nil call: the test binary
		# panics against any broker, ending the package's run).
		copy_module github.com/segmentio/kafka-go kafka-go
		start_broker kafka-go -listen "127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9093" -advertise localhost:9092,localhost:9093 \
			-sasl-users-file "$work/users" -authorizer -allow-everyone-if-no-acl \
			-max-message-bytes 200000000 -max-request-bytes 209715200
		run_suite kafka-go "$work/kafka-go" ./... 'TestReaderConsumerGroup/(verify_offset_committed|consumer_group_commits_on_close)' KAFKA_VERSION=4.0.0
		stop_broker
		summarize kafka-go
		;;
	confluent | confluent-848)
		# confluent-kafka-go's kafka package: testconf.json names the
		# brokers (PLAINTEXT and SASL_PLAINTEXT with PLAIN), and its
		# docker-compose.yaml runs an authorizer with User:ANONYMOUS (the
		# PLAINTEXT broker) and User:admin (the SASL one) as super users,
		# everyone allowed when no ACL matches. confluent-848 runs it
		# again with group.protocol=consumer (KIP-848).
		[ -d "$work/confluent" ] || copy_module github.com/confluentinc/confluent-kafka-go/v2 confluent
		p=$(free_port)
		ps=$(free_port)
		start_broker "$s" -listen "127.0.0.1:$p,SASL_PLAINTEXT://127.0.0.1:$ps" -sasl-users-file "$work/users" \
			-authorizer -super-users User:ANONYMOUS,User:admin -allow-everyone-if-no-acl
		cat >"$work/confluent/kafka/testconf.json" <<EOF
{"Brokers": "127.0.0.1:$p", "BrokersSasl": "127.0.0.1:$ps", "SaslUsername": "testuser",
 "SaslPassword": "testpass", "SaslMechanism": "PLAIN", "TopicName": "test", "GroupID": "testgroup",
 "PerfMsgCount": 100000, "PerfMsgSize": 100, "Config": ["api.version.request=true"]}
EOF
		proto=classic
		[ "$s" = confluent-848 ] && proto=consumer
		run_suite "$s" "$work/confluent/kafka" . "" TEST_CONSUMER_GROUP_PROTOCOL=$proto
		stop_broker
		summarize "$s"
		;;
	*)
		echo "unknown suite $s (kgo, kafka-go, confluent, confluent-848)" >&2
		exit 2
		;;
	esac
done
