#!/usr/bin/env bash
# Create (or complete) the virtual environment holding upstream Basic Pitch 0.4.0 for the
# benchmark in benchmarks/bench_transcribe.py. Idempotent: rerunning it on a finished venv only
# re-checks it.
#
#   benchmarks/setup_upstream.sh                 # venv at benchmarks/.upstream-venv
#   UPSTREAM_VENV=/some/dir benchmarks/setup_upstream.sh
#   PYTHON=python3.11 benchmarks/setup_upstream.sh
#
# basic-pitch 0.4.0 declares TensorFlow as a dependency on Linux with Python >= 3.11, so it is
# installed with --no-deps and its runtime needs are listed explicitly; without TensorFlow,
# CoreML and TFLite its CLI falls back to the bundled ONNX model (onnxruntime).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${UPSTREAM_VENV:-$here/.upstream-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --no-deps "basic-pitch==0.4.0"
"${pip[@]}" install librosa mir_eval pretty_midi "resampy<0.4.3" scipy scikit-learn onnxruntime

# Check that the CLI starts and that the ONNX weights are where the CLI looks for them.
"$venv/bin/basic-pitch" --help >/dev/null 2>&1 || {
    echo "error: $venv/bin/basic-pitch --help failed" >&2
    exit 1
}
model="$("$venv/bin/python" - <<'EOF'
import importlib.util
import pathlib

spec = importlib.util.find_spec("basic_pitch")
assert spec is not None and spec.submodule_search_locations
path = pathlib.Path(spec.submodule_search_locations[0]) / "saved_models" / "icassp_2022" / "nmp.onnx"
print(path if path.is_file() else "")
EOF
)"
if [ -z "$model" ]; then
    echo "error: nmp.onnx not found in the basic-pitch install in $venv" >&2
    exit 1
fi
"$venv/bin/python" -c "import onnxruntime, librosa, mir_eval, pretty_midi, resampy, scipy, sklearn" || {
    echo "error: a runtime dependency of basic-pitch does not import in $venv" >&2
    exit 1
}
echo "upstream Basic Pitch ready: $venv/bin/basic-pitch (model $model)"
