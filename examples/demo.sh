#!/usr/bin/env bash
# Set up (see .ci/setup-env.sh), synthesise the demo recording and transcribe it:
# out/demo.wav -> out/demo.mid (MPE bends) and out/demo.csv (one row a note).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup-env.sh
. .venv/bin/activate
python examples/make_demo.py out/demo.wav
livepitch transcribe out/demo.wav -o out/demo.mid --csv out/demo.csv --bends mpe
column -s, -t out/demo.csv 2>/dev/null || cat out/demo.csv
