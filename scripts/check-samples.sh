#!/usr/bin/env bash
# The two official samples against their truth files, with every parser:
# kuniq count's last revision of each minute must equal the truth file's
# count. The samples are not part of the repository; they live in a data
# directory beside it (../shared/data on the project's machines and in CI).
#
# Usage: scripts/check-samples.sh [DATA_DIR]     (default: ../shared/data)
#
# Exits 0 when every sample matches, 1 on a mismatch, 2 when DATA_DIR has no
# samples (the caller decides whether that is an error).
set -euo pipefail
cd "$(dirname "$0")/.."

data="${1:-../shared/data}"
shopt -s nullglob
samples=("$data"/*.jsonl.gz)
if ((${#samples[@]} == 0)); then
    echo "check-samples: no samples (*.jsonl.gz with a .truth.jsonl) in $data" >&2
    exit 2
fi

cargo build --quiet --all-features
kuniq=target/debug/kuniq
failed=0
for sample in "${samples[@]}"; do
    truth="${sample%.jsonl.gz}.truth.jsonl"
    [[ -f "$truth" ]] || { echo "check-samples: $truth is missing" >&2; failed=1; continue; }
    # {"minute":M,"count":N} lines, sorted by minute.
    want="$(python3 -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n".join("%d %d" % (r["minute"], r["count"]) for r in sorted(rows, key=lambda r: r["minute"])))' "$truth")"
    for parser in scan sonic serde; do
        got="$("$kuniq" count -i "$sample" --parser "$parser" --progress never --summary none | python3 -c 'import json,sys
last={}
for l in sys.stdin:
    r=json.loads(l); last[r["start"]]=r["unique_users"]
print("\n".join(f"{m} {n}" for m,n in sorted(last.items())))')"
        if [[ "$got" == "$want" ]]; then
            echo "check-samples: $(basename "$sample") with --parser $parser: $(wc -l <<<"$want") minutes equal to the truth file"
        else
            echo "check-samples: $(basename "$sample") with --parser $parser DIFFERS from $truth" >&2
            diff <(echo "$want") <(echo "$got") >&2 || true
            failed=1
        fi
    done
done
exit "$failed"
