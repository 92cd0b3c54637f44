#!/usr/bin/env bash
# CTest's run of the twin's self-test (twin_selftest): the fair scans and the oracle scan
# against a float64 sequential loop, the twin's deformable conv, layouts and HDF5 round
# trips, on this machine's CPU through Debian's python3-torch. Exit 77 = skipped.
set -euo pipefail
if ! /usr/bin/python3 -c "import torch, h5py, numpy" 2>/dev/null; then
  echo "skipped: /usr/bin/python3 lacks torch, h5py or numpy (apt-get install python3-torch python3-h5py)"
  exit 77
fi
cd "$(dirname "$0")"
exec /usr/bin/python3 selftest_twin.py
