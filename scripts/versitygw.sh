#!/usr/bin/env bash
# versitygw.sh: a real S3 server (versitygw, posix backend) on loopback for
# klite's tier tests and for trying -s3-* flags by hand.
#
#   scripts/versitygw.sh install        build it into the cache if missing; print the binary path
#   scripts/versitygw.sh start DIR      start on 127.0.0.1:<free port> with data in DIR; wait until
#                                       it answers; print "endpoint=http://127.0.0.1:PORT" and the
#                                       access key/secret; pid in DIR/versitygw.pid
#   scripts/versitygw.sh stop DIR       stop the one started in DIR
#
# Environment: KLITE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/klite), VERSITYGW_VERSION
# (default v1.8.0), VERSITYGW_ACCESS / VERSITYGW_SECRET (default klite / klite-secret-key),
# VERSITYGW_BUCKET (created at start; default klite-test).
# The first install builds from source (minutes on an empty Go cache).
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${KLITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klite}"
BINDIR="$CACHE/versitygw-$VERSION"
BIN="$BINDIR/versitygw"
ACCESS="${VERSITYGW_ACCESS:-klite}"
SECRET="${VERSITYGW_SECRET:-klite-secret-key}"
BUCKET="${VERSITYGW_BUCKET:-klite-test}"
GO="${GO:-go}"

install() {
	if [ ! -x "$BIN" ]; then
		mkdir -p "$BINDIR"
		echo "versitygw.sh: building versitygw $VERSION into $BINDIR (minutes on first run)" >&2
		# Outside any module so the project's go.mod is not touched.
		(cd / && GOBIN="$BINDIR" GOFLAGS=-mod=mod "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSION")
	fi
	echo "$BIN"
}

free_port() {
	# Bind port 0, read the port the kernel chose, release it.
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null && return
	local p
	for p in $(shuf -i 20000-32000 -n 50); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "versitygw.sh: no free port" >&2; exit 1
}

start() {
	local dir="$1"
	install >/dev/null
	mkdir -p "$dir/root/$BUCKET"
	local port
	port="$(free_port)"
	"$BIN" --access "$ACCESS" --secret "$SECRET" --port "127.0.0.1:$port" posix "$dir/root" \
		>"$dir/versitygw.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/versitygw.pid"
	local deadline=$((SECONDS + 30))
	# Ready when the port accepts connections (any HTTP answer will do).
	until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "versitygw.sh: versitygw exited; log:" >&2; cat "$dir/versitygw.log" >&2; exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "versitygw.sh: not ready after 30s; log:" >&2; cat "$dir/versitygw.log" >&2; kill "$pid"; exit 1
		fi
		sleep 0.1
	done
	echo "endpoint=http://127.0.0.1:$port"
	echo "access=$ACCESS"
	echo "secret=$SECRET"
	echo "bucket=$BUCKET"
}

stop() {
	local dir="$1"
	if [ -f "$dir/versitygw.pid" ]; then
		kill "$(cat "$dir/versitygw.pid")" 2>/dev/null || true
		rm -f "$dir/versitygw.pid"
	fi
}

case "${1:-}" in
install) install ;;
start) start "${2:?usage: $0 start DIR}" ;;
stop) stop "${2:?usage: $0 stop DIR}" ;;
*) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
