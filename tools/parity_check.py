#!/usr/bin/env python3
"""Compare the C++ engine's logits with the PyTorch twin's on the same weights and input.

    python3 tools/parity_check.py --weights model.h5 --input in.npy --engine-output out.npy \
        [--device cpu|cuda] [--tolerance 1e-4] [--min-argmax-agreement 0] [--twin-output twin.npy]

in.npy: N,D,H,W,C float32 (channels-last); out.npy: the engine's logits N,D,H,W,K float32.
Runs the twin in fp32 with TF32 disabled and prints one JSON line; exit 0 if
relative_error = max_abs_error / max_abs_twin <= tolerance and the share of voxels whose
argmax agrees is at least --min-argmax-agreement (bf16 engine runs: 0.999), else 1.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import voxmamba_twin as twin  # noqa: E402


def disable_tf32():
    """Strict fp32 matmuls and convolutions, on old (allow_tf32) and new (fp32_precision) PyTorch."""
    if hasattr(torch.backends, "fp32_precision"):          # PyTorch >= 2.9: use the new API only
        torch.backends.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--engine-output", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--min-argmax-agreement", type=float, default=0.0)
    ap.add_argument("--twin-bf16", action="store_true",
                    help="also report how the twin itself under bf16 autocast compares with its fp32 logits")
    ap.add_argument("--twin-output", help="also save the twin's logits (N,D,H,W,K float32 NPY)")
    args = ap.parse_args(argv)

    result = {"weights": args.weights, "input_shape": None, "parameters": None, "max_abs_error": None,
              "mean_abs_error": None, "max_abs_twin": None, "relative_error": None,
              "argmax_agreement": None, "device": args.device, "torch": torch.__version__,
              "passed": False}
    try:
        disable_tf32()
        dev = torch.device(args.device)
        x = np.load(args.input).astype(np.float32, copy=False)
        eng = np.load(args.engine_output).astype(np.float32, copy=False)
        result["input_shape"] = list(x.shape)
        if x.ndim == 4:                       # D,H,W,C: a single sample
            x = x[None]
            if eng.ndim == 4:
                eng = eng[None]
        model, _ = twin.load_hdf5(args.weights, device=dev)
        result["parameters"] = twin.count_parameters(model)
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(x)).to(dev)).float().cpu().numpy()
        if args.twin_bf16:
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
                low = model(torch.from_numpy(np.ascontiguousarray(x)).to(dev)).float().cpu().numpy()
            low_diff = np.abs(out.astype(np.float64) - low.astype(np.float64))
            result["twin_bf16_autocast"] = {"max_abs_error": float(low_diff.max()),
                                            "mean_abs_error": float(low_diff.mean()),
                                            "argmax_agreement": float((out.argmax(-1) == low.argmax(-1)).mean())}
        if args.twin_output:
            np.save(args.twin_output, out)
        if out.shape != eng.shape:
            raise ValueError(f"engine output shape {list(eng.shape)} != twin output shape {list(out.shape)}")
        diff = np.abs(out.astype(np.float64) - eng.astype(np.float64))
        max_err = float(diff.max())
        max_twin = float(np.abs(out).max())
        rel = max_err / max_twin if max_twin > 0 else (0.0 if max_err == 0 else float("inf"))
        agreement = float((out.argmax(-1) == eng.argmax(-1)).mean())
        result.update(max_abs_error=max_err, mean_abs_error=float(diff.mean()), max_abs_twin=max_twin,
                      std_twin=float(out.std()), relative_error=rel, argmax_agreement=agreement,
                      passed=bool(np.isfinite(eng).all() and rel <= args.tolerance
                                  and agreement >= args.min_argmax_agreement))
    except Exception as e:  # report in the one JSON line
        result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
