#!/usr/bin/env bash
# The engine end to end on this machine: create a seeded `small` model, describe it, and run
# the network on a 64^3 volume. (The bundled real sample and a trained model come later; see
# samples/README.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
mkdir -p "$out"
build/cli/voxmamba init --config small --classes 3 --seed 1 -o "$out/model.h5" --force
build/cli/voxmamba info "$out/model.h5"
python3 -c "import numpy as n; n.save('$out/volume.npy', n.random.RandomState(0).standard_normal((1,64,64,64,1)).astype(n.float32))"
build/cli/voxmamba forward --weights "$out/model.h5" --input "$out/volume.npy" --output "$out/logits.npy"
python3 -c "import numpy as n; l = n.load('$out/logits.npy'); print('logits', l.shape, l.dtype, 'labels present:', sorted(set(l.argmax(-1).ravel().tolist())))"
