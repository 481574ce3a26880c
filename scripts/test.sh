#!/usr/bin/env bash
# The test suite: unit, property and end-to-end tests, the Kafka tests on
# Apache Kafka and a compatibility set on tansu. This is the README's test
# command and what .ci/run calls.
#
# Usage: scripts/test.sh [extra cargo test args...]
#
# The Kafka tests start their own brokers on free loopback ports (one Apache
# Kafka per test binary, one tansu per tansu test); they need both installed.
# Each install is skipped when present: Apache Kafka's jars come from Maven
# Central (needs java 17+ and mvn, about 10 s), tansu is built with cargo
# (7-11 minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/broker.sh install --kind kafka
scripts/broker.sh install --kind tansu
cargo test --all-features "$@"
