#!/usr/bin/env bash
# debian-deps.sh: the Debian packages klite's integration tests drive as real
# clients: kcat (librdkafka 2.0.2, the old librdkafka that only compresses
# when Produce v0-2 is advertised) and kafka-python (a client written from the
# protocol, not on librdkafka). Installed only when missing; `apt-get update`
# only when the first install attempt fails (a fresh machine's empty lists).
#
# Environment: KLITE_DEBIAN_DEPS=0 skips (the tests that need them then skip).
set -euo pipefail

if [ "${KLITE_DEBIAN_DEPS:-1}" = 0 ]; then
	exit 0
fi
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
(cd / && /usr/bin/python3 -c 'from kafka import KafkaProducer') >/dev/null 2>&1 || missing+=(python3-kafka)
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "debian-deps.sh: no apt-get here; install ${missing[*]} by hand or set KLITE_DEBIAN_DEPS=0" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
	sudo=(sudo -n)
fi
echo "debian-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; then
	"${sudo[@]}" apt-get update -q >/dev/null
	"${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
fi
