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
# (7-11 minutes the first time). The Python `datasketches` package for
# tests/sketch_compat.rs goes into target/test-venv (pip, once).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/broker.sh install --kind kafka
scripts/broker.sh install --kind tansu

# tests/sketch_compat.rs checks kuniq's HLL sketches against Apache
# DataSketches in Python (PyPI `datasketches`, pinned), installed once into a
# venv of the tests' own; KUNIQ_PYTHON tells the test which interpreter to run.
datasketches_version="5.2.0"
datasketches_spec="datasketches==$datasketches_version"
test_venv="target/test-venv"
if ! "$test_venv/bin/python" -c "from importlib import metadata; import sys
sys.exit(metadata.version('datasketches') != '$datasketches_version')" 2>/dev/null; then
    [[ -x "$test_venv/bin/python" ]] || python3 -m venv "$test_venv" \
        || { echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
    "$test_venv/bin/pip" install --quiet "$datasketches_spec" \
        || { echo "error: pip install $datasketches_spec failed" >&2; exit 1; }
fi
export KUNIQ_PYTHON="$PWD/$test_venv/bin/python"

cargo test --all-features "$@"
