#!/usr/bin/env bash
# Set up everything livepitch and its tests need on a fresh machine; safe to run again.
#  - system packages (as root, with apt): libportaudio2 (sounddevice), jackd2 (live tests),
#    JACK's and ALSA's headers, pkg-config and g++ to build python-rtmidi against the system
#    libjack (below), and Python's headers for livepitch's C audio callback
#  - a virtual environment in .venv with livepitch (editable) and its dev/bench tools
#  - the Basic Pitch weights: basic-pitch 0.4.0 installed with --no-deps (no TensorFlow)
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-python3}
apt_packages=(libportaudio2 jackd2 libjack-jackd2-dev libasound2-dev pkg-config g++ python3-dev)

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for package in "${apt_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}" >&2
    echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages ${missing[*]} (install them as root); continuing" >&2
  fi
fi

"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "setup: livepitch needs Python >= 3.10 (set PYTHON=...)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$python_bin" -m venv .venv

stamp=.venv/.livepitch-setup
# what the C audio callback's build needs, so that the install runs again once they are here
c_build_tools="$(command -v cc || true) $(.venv/bin/python -c 'import os, sysconfig; print(os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))')"
want="$({ sha256sum pyproject.toml setup.py livepitch/_capture_native.c livepitch/_abort_restart.c .ci/setup-env.sh; echo "$c_build_tools"; } | sha256sum | cut -c1-16)"
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: installing Python packages into .venv (log: .venv/setup.log)" >&2
  {
    .venv/bin/python -m pip install --upgrade pip &&
    .venv/bin/python -m pip install -e ".[dev,bench]" &&
    .venv/bin/python -m pip install --no-deps "basic-pitch==0.4.0"
  } > .venv/setup.log 2>&1 || { tail -n 30 .venv/setup.log >&2; echo "setup: pip failed" >&2; exit 1; }
  # The C extensions are optional: pip goes on without them, so say so here.
  .venv/bin/python -c 'from livepitch import native_capture as n; raise SystemExit(not n.available())' ||
    echo "setup: livepitch's C audio callback did not build (it needs a C compiler and Python's headers; see .venv/setup.log): the daemon uses its Python callback" >&2
  .venv/bin/python -c 'from livepitch import abort_restart as a; raise SystemExit(not a.available())' ||
    echo "setup: livepitch's abort handler did not build (see .venv/setup.log): an abort inside PortAudio ends the daemon" >&2
  echo "$want" > "$stamp"
fi

# python-rtmidi's Linux wheel bundles its own libjack, while PortAudio (the audio input) uses the
# system's: each copy maps and mlocks JACK's port table, 103 MB with jackd's default 2048 ports.
# Built against the system JACK (about 15 s), one copy serves both. Checked on every run, so a
# machine that gets the headers later gets the build then.
rtmidi_module=$(.venv/bin/python -c 'import rtmidi._rtmidi as m; print(m.__file__)' 2>/dev/null || true)
if [[ $(uname -s) == Linux && -n $rtmidi_module ]]; then
  linked=$(ldd "$rtmidi_module" 2>/dev/null || true)
  if [[ $linked == *libjack*site-packages* ]]; then
    if pkg-config --exists jack alsa 2>/dev/null; then
      echo "setup: building python-rtmidi against the system JACK (log: .venv/setup.log)" >&2
      rtmidi_version=$(.venv/bin/python -c 'from importlib.metadata import version; print(version("python-rtmidi"))')
      .venv/bin/python -m pip install --no-binary python-rtmidi --no-deps --force-reinstall \
        "python-rtmidi==$rtmidi_version" >> .venv/setup.log 2>&1 ||
        echo "setup: could not build python-rtmidi; it keeps its own libjack (see .venv/setup.log)" >&2
    else
      echo "setup: python-rtmidi keeps its own libjack (no JACK/ALSA headers: libjack-jackd2-dev, libasound2-dev)" >&2
    fi
  fi
fi
