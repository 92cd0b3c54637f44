"""Where does a 16-bit engine's argmax differ from float32's? By the float32 logits' margin.

A voxel's margin is its top float32 logit minus the runner-up. Rounding to a 16-bit type moves
each logit by a small error; it can change the argmax only where the margin is at most twice
that error. This tool runs the twin in float32 and rounded as tools/precision_emulation.py rounds it
(the engine's storage points), and reports per margin bucket the share of voxels and their
argmax agreement. Seeded random weights and trained ones differ most here: issue 4's parity bar
(99.9% agreement) depends on how many voxels sit near a tie.

    python3 tools/precision_margins.py --weights model.h5 --input x.npy [--types bf16,fp16]
        [--labels y.npy] [--threads N] [--device cpu|cuda]

Prints one JSON object: the margins' quantiles; the largest float32 output of any module, with
its name (float16 overflows past 65504); and per type, agreement overall and per bucket (with
--labels, also each precision's accuracy against those labels). Where a type's logits are not
all finite (float16 past 65504), their count is given and the errors are null.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_check  # noqa: E402
import precision_emulation as emulation  # noqa: E402
import voxmamba_twin as twin  # noqa: E402

# Bucket edges of the float32 margin, in logit units.
EDGES = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, float("inf")]


def margins(logits):
    """Top logit minus the runner-up, per voxel (logits [..., classes], at least two classes)."""
    top2 = logits.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def largest_output(model, x):
    """(float32 output, {"module", "max_abs"} of the leaf module whose output is largest in magnitude)."""
    largest = {"module": None, "max_abs": 0.0}

    def record(name):
        def hook(_module, _inputs, out):
            if torch.is_tensor(out):
                max_abs = float(out.abs().max())
                if max_abs > largest["max_abs"]:
                    largest.update(module=name, max_abs=max_abs)
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if next(m.children(), None) is None]
    try:
        with torch.no_grad():
            out = model(x).float()
    finally:
        for h in handles:
            h.remove()
    return out, largest


def bucket_table(margin, agree):
    rows = []
    total = margin.numel()
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        inside = (margin >= lo) & (margin < hi)
        count = int(inside.sum())
        rows.append({"margin": [lo, hi if hi != float("inf") else None], "share": count / total,
                     "agreement": float(agree[inside].float().mean()) if count else None})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="HDF5 weights file")
    ap.add_argument("--input", required=True, help=".npy float32 [N, D, H, W, C_in]")
    ap.add_argument("--labels", default=None, help=".npy int [N, D, H, W]: also report accuracy")
    ap.add_argument("--types", default="bf16,fp16", help="comma list of " + ", ".join(emulation.TYPES))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="PyTorch device for the twin (cpu, cuda); float32 without TF32")
    args = ap.parse_args(argv)
    types = [t for t in args.types.split(",") if t]
    unknown = [t for t in types if t not in emulation.TYPES]
    if unknown:
        ap.error(f"unknown type(s) {', '.join(unknown)}; expected {', '.join(emulation.TYPES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    parity_check.disable_tf32()
    x = torch.from_numpy(np.load(args.input)).to(args.device)
    labels = torch.from_numpy(np.load(args.labels)).to(args.device) if args.labels else None
    if labels is not None and labels.shape != x.shape[:-1]:
        ap.error(f"--labels has shape {tuple(labels.shape)}, the input's voxels {tuple(x.shape[:-1])}")
    model, _ = twin.load_hdf5(args.weights, device=args.device)
    reference, largest = largest_output(model, x)
    if reference.shape[-1] < 2:
        ap.error("the model has one output channel: no argmax to compare")
    margin = margins(reference)
    quantiles = [0.001, 0.01, 0.05, 0.5]
    result = {"weights": args.weights, "input": list(x.shape), "std_float32": float(reference.std()),
              "margin_quantiles": {str(q): float(margin.quantile(q)) for q in quantiles},
              "largest_float32_output": largest}
    if labels is not None:
        result["float32_accuracy"] = float((reference.argmax(-1) == labels).float().mean())
    for name in types:
        with torch.no_grad():
            logits = emulation.rounded_model(args.weights, emulation.TYPES[name], device=args.device)(x).float()
        error = (logits - reference).abs()
        agree = logits.argmax(-1) == reference.argmax(-1)
        non_finite = int((~torch.isfinite(logits)).sum())
        entry = {"argmax_agreement": float(agree.float().mean()),
                 "max_abs_error": float(error.max()) if non_finite == 0 else None,
                 "mean_abs_error": float(error.mean()) if non_finite == 0 else None,
                 "non_finite_logits": non_finite, "buckets": bucket_table(margin, agree)}
        if labels is not None:
            entry["accuracy"] = float((logits.argmax(-1) == labels).float().mean())
        result[name] = entry
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
