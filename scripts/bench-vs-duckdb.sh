#!/usr/bin/env bash
# The peers benchmark (DuckDB, chDB, Polars) under its former name.
exec "$(dirname "${BASH_SOURCE[0]}")/bench-peers.sh" "$@"
