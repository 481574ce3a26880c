#!/usr/bin/env bash
# The test suite: unit, property and end-to-end tests for every parser
# feature. This is the README's test command and what .ci/run calls.
#
# Usage: scripts/test.sh [extra cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# The Kafka tests start their own tansu brokers; install it once per machine
# (skipped when present).
scripts/broker.sh install
cargo test --all-features "$@"
