#!/usr/bin/env bash
# CTest's parity check (twin_parity_small): the small config at 32^3 with random offset
# heads, then weights that the twin itself trained and wrote (a few steps of
# tools/train_twin_synthetic.py at 16^3, on its held-out case), twin on this machine's CPU
# through Debian's python3-torch. Exit 77 = skipped.
set -euo pipefail
voxmamba=$1 work=$2
if ! /usr/bin/python3 -c "import torch, h5py, numpy" 2>/dev/null; then
  echo "skipped: /usr/bin/python3 lacks torch, h5py or numpy (apt-get install python3-torch python3-h5py)"
  exit 77
fi
here=$(dirname "$0")
export PYTHON=/usr/bin/python3
"$here/parity_run.sh" "$voxmamba" "$work" small 32 cpu 0.5
trained=$work/trained
"$PYTHON" "$here/train_twin_synthetic.py" --out "$trained" --steps 3 --size 16 --val-size 32 --threads 2 >/dev/null
MODEL=$trained/trained.h5 INPUT=$trained/val_input.npy exec "$here/parity_run.sh" "$voxmamba" "$work" small 32 cpu
