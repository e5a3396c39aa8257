#!/usr/bin/env bash
# Set up (see .ci/setup-env.sh), synthesise the demo recording and play it through the live
# pipeline at real-time pace: capture ring -> worker -> streaming engine -> MIDI.
# Prints each note as it is sent, sends MIDI on the virtual port "BasicPitch Out" where a MIDI
# system is available (ALSA, or a running JACK server; otherwise one line says why), and writes
# the session to out/demo.mid and every event to out/demo-events.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup-env.sh
. .venv/bin/activate
python examples/make_demo.py out/demo.wav
livepitch --input-file out/demo.wav --print-notes --quiet --bends mpe \
  --record out/demo.mid --events-csv out/demo-events.csv
echo "wrote out/demo.mid and out/demo-events.csv"
