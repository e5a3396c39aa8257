#!/usr/bin/env bash
# Set up (see .ci/setup-env.sh) and run every check: lint, types, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup-env.sh
. .venv/bin/activate
ruff check livepitch tests benchmarks examples
ruff format --check livepitch tests benchmarks examples
mypy
python -m pytest "$@"
