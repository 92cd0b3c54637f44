#!/usr/bin/env bash
# The engine end to end on this machine: create a seeded `small` model, describe it, run the
# network on a 64^3 volume, and segment a real volume (a cropped Colin27 T1 from Debian's
# mricron-data, if installed). The bundled sample and a trained model come later; see
# samples/README.md. An untrained model's labels are meaningless; the geometry is not.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
mkdir -p "$out"
build/cli/voxmamba init --config small --classes 3 --seed 1 -o "$out/model.h5" --force
build/cli/voxmamba info "$out/model.h5"
/usr/bin/python3 -c "import numpy as n; n.save('$out/volume.npy', n.random.RandomState(0).standard_normal((1,64,64,64,1)).astype(n.float32))"
build/cli/voxmamba forward --weights "$out/model.h5" --input "$out/volume.npy" --output "$out/logits.npy"
/usr/bin/python3 -c "import numpy as n; l = n.load('$out/logits.npy'); print('logits', l.shape, l.dtype, 'labels present:', sorted(set(l.argmax(-1).ravel().tolist())))"
colin=/usr/share/mricron/templates/ch2.nii.gz
if [[ -f $colin ]]; then
  build/cli/voxmamba init --config small --classes 3 --seed 1 --patch-size 96 96 96 --spacing 2 2 2 \
    -o "$out/model_2mm.h5" --force
  build/cli/voxmamba segment -i "$colin" -o "$out/colin_seg.nii.gz" -m "$out/model_2mm.h5" --no-tta \
    --stats "$out/colin_stats.json"
  build/cli/voxmamba info "$out/colin_seg.nii.gz"
fi
