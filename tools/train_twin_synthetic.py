"""Train the PyTorch twin briefly on a synthetic segmentation task, for precision studies.

Issue 4's parity check runs on seeded random weights, whose logits carry no decision: many
voxels have two classes within a rounding error of each other. This tool gives a network that
has learned something, so that a 16-bit engine's argmax agreement can also be measured where
the logits decide (tools/precision_margins.py). It is a research aid, not `voxmamba train`.

The task: S^3 volumes of smooth noise with balls of random centre and radius, each either
brighter (class 1) or darker (class 2) than the background (class 0), under voxel noise
strong enough that a voxel's own value does not tell its class; the neighbourhood does.

    python3 tools/train_twin_synthetic.py --out DIR [--config small] [--steps 200] [--size 32]
        [--batch 2] [--val-size 64] [--seed 1] [--threads N] [--device cpu|cuda]

Writes DIR/trained.h5 (the twin's weights file, as voxmamba reads it), DIR/val_input.npy and
DIR/val_labels.npy (one held-out volume at --val-size), and prints one JSON line per logged
step and a last one with the held-out accuracy.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import voxmamba_twin as twin  # noqa: E402

CLASSES = 3  # background, bright balls, dark balls


def synthetic_case(rng, size):
    """One volume [size^3] float32 and its labels [size^3] int64."""
    grid = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float32)] * 3, indexing="ij"))
    # A smooth background: a few low-frequency cosines, so that no global threshold separates
    # the classes.
    image = np.zeros((size,) * 3, dtype=np.float32)
    for _ in range(3):
        k = rng.uniform(0.5, 2.0, 3) * 2 * np.pi / size
        image += 0.3 * np.cos(np.tensordot(k, grid, axes=1) + rng.uniform(0, 2 * np.pi))
    labels = np.zeros((size,) * 3, dtype=np.int64)
    for _ in range(rng.integers(4, 9)):
        centre = rng.uniform(0, size, 3).astype(np.float32)
        radius = rng.uniform(2.5, size / 5)
        inside = ((grid - centre[:, None, None, None]) ** 2).sum(0) < radius**2
        bright = rng.random() < 0.5
        image[inside] += 1.0 if bright else -1.0
        labels[inside] = 1 if bright else 2
    image += rng.normal(0.0, 0.6, image.shape).astype(np.float32)
    return image, labels


def batch(rng, size, count):
    cases = [synthetic_case(rng, size) for _ in range(count)]
    x = torch.from_numpy(np.stack([c[0] for c in cases])[..., None])
    y = torch.from_numpy(np.stack([c[1] for c in cases]))
    return x, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--config", default="small", choices=["small", "base"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=32, help="training volumes' edge (a multiple of 16)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--val-size", type=int, default=64, help="held-out volume's edge (a multiple of 16)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="PyTorch device to train on (cpu, cuda)")
    args = ap.parse_args(argv)
    for name in ("size", "val_size"):
        if getattr(args, name) % 16:
            ap.error(f"--{name.replace('_', '-')} must be a multiple of 16 (network.md)")
    if args.steps < 1 or args.batch < 1:
        ap.error("--steps and --batch must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    config = twin.config_preset(args.config, CLASSES)
    model = twin.build_model(config, seed=args.seed).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    for step in range(1, args.steps + 1):
        x, y = (t.to(args.device) for t in batch(rng, args.size, args.batch))
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, CLASSES), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % args.log_every == 0 or step == args.steps:
            accuracy = float((logits.argmax(-1) == y).float().mean())
            print(json.dumps({"step": step, "loss": round(float(loss), 4), "accuracy": round(accuracy, 4),
                              "seconds": round(time.time() - start, 1)}), flush=True)

    # A held-out volume from a generator of its own, so that it never met training.
    val_x, val_y = batch(np.random.default_rng(args.seed + 1_000_003), args.val_size, 1)
    with torch.no_grad():
        predicted = model(val_x.to(args.device)).argmax(-1).cpu()
    dice = []
    for c in range(1, CLASSES):
        both = float(((predicted == c) & (val_y == c)).sum())
        total = float((predicted == c).sum() + (val_y == c).sum())
        dice.append(round(2 * both / total, 4) if total else None)
    twin.save_hdf5(model, config, os.path.join(args.out, "trained.h5"))
    np.save(os.path.join(args.out, "val_input.npy"), val_x.numpy())
    np.save(os.path.join(args.out, "val_labels.npy"), val_y.numpy())
    print(json.dumps({"held_out": list(val_x.shape), "accuracy": round(float((predicted == val_y).float().mean()), 4),
                      "dice": dice, "config": args.config, "steps": args.steps, "seed": args.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
