#!/usr/bin/env bash
# CTest's parity check (twin_parity_small): the small config at 32^3 with random offset
# heads, twin on this machine's CPU through Debian's python3-torch. Exit 77 = skipped.
set -euo pipefail
voxmamba=$1 work=$2
if ! /usr/bin/python3 -c "import torch, h5py, numpy" 2>/dev/null; then
  echo "skipped: /usr/bin/python3 lacks torch, h5py or numpy (apt-get install python3-torch python3-h5py)"
  exit 77
fi
PYTHON=/usr/bin/python3 exec "$(dirname "$0")/parity_run.sh" "$voxmamba" "$work" small 32 cpu 0.5
