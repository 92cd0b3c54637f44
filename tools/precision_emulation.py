"""How far would a 16-bit engine move the logits? An estimate on the PyTorch twin, without a GPU.

The engine's reduced-precision forward stores the weights of GEMM-shaped ops (dense, pointwise
and transposed convs, linear maps) and every op's output in the activation type, computes in
float32 and writes the logits in float32 (ops.h). This tool rounds the twin at those points
instead: GEMM weights are rounded once, and a forward hook rounds the output of every leaf
module except the head's final pointwise conv. It then compares the argmax and the logits with
the plain float32 twin.

It tracks the engine closely: for `small` at 64^3 with random offsets it gave 99.60% argmax
agreement in bfloat16, where the engine on an H200 gave 99.53% (issue 4's parity check), and
99.95% in float16, where the engine gave 99.94% (--precision fp16). It is an estimate, not a
parity check: functional ops that are not modules (adds, GELU between modules) are not rounded.

    python3 tools/precision_emulation.py --weights model.h5 --input x.npy [--types bf16,fp16]
        [--keep-fp32 REGEX] [--fp32-weights]

--keep-fp32 leaves the outputs of the modules whose names match REGEX (Python re.search on
names such as decoder.ups.0.res.norm1) unrounded, and --fp32-weights the GEMM weights: what a
mixed-precision engine that kept those tensors in float32 would gain.

Prints one JSON object: per type, argmax agreement and max/mean abs error against float32.
"""

import argparse
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import voxmamba_twin as twin  # noqa: E402

TYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def is_gemm(name, module):
    """Modules whose weights the engine stores in the activation type (ops.h). dt_proj is not
    one: the selective scan forms delta from dt_in with dt_proj's weight in float32."""
    if name.endswith("dt_proj"):
        return False
    if isinstance(module, (nn.Linear, nn.ConvTranspose3d)):
        return True
    return isinstance(module, nn.Conv3d) and module.groups == 1


def rounded_model(weights, dtype, keep_fp32=None, fp32_weights=False, device="cpu"):
    """The twin with GEMM weights rounded to dtype (unless fp32_weights) and every leaf module's
    output rounded, except those whose names match the regular expression keep_fp32."""
    model, _ = twin.load_hdf5(weights, device=device)
    for name, module in model.named_modules():
        if is_gemm(name, module) and not fp32_weights:
            with torch.no_grad():
                module.weight.copy_(module.weight.to(dtype).float())
        is_leaf = next(module.children(), None) is None
        kept = keep_fp32 is not None and re.search(keep_fp32, name)
        if is_leaf and not kept and not name.endswith("head.out"):  # the engine writes the logits in float32
            module.register_forward_hook(
                lambda _m, _i, out: out.to(dtype).float() if torch.is_tensor(out) else out)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="HDF5 weights file (voxmamba init or training)")
    ap.add_argument("--input", required=True, help=".npy float32 [N, D, H, W, C_in]")
    ap.add_argument("--types", default="bf16,fp16", help="comma list of " + ", ".join(TYPES))
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    ap.add_argument("--keep-fp32", metavar="REGEX", default=None,
                    help="leave the outputs of modules whose names match REGEX in float32")
    ap.add_argument("--fp32-weights", action="store_true", help="leave the GEMM weights in float32")
    args = ap.parse_args(argv)
    types = [t for t in args.types.split(",") if t]
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        ap.error(f"unknown type(s) {', '.join(unknown)}; expected {', '.join(TYPES)}")
    if args.keep_fp32 is not None:
        try:
            re.compile(args.keep_fp32)
        except re.error as e:
            ap.error(f"--keep-fp32: not a regular expression: {e}")
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.from_numpy(np.load(args.input))
    model, _ = twin.load_hdf5(args.weights)
    with torch.no_grad():
        reference = model(x).float()
    result = {"weights": args.weights, "input": list(x.shape), "std_float32": float(reference.std()),
              "keep_fp32": args.keep_fp32, "fp32_weights": args.fp32_weights}
    for name in types:
        with torch.no_grad():
            logits = rounded_model(args.weights, TYPES[name], args.keep_fp32, args.fp32_weights)(x).float()
        error = (logits - reference).abs()
        result[name] = {
            "argmax_agreement": float((logits.argmax(-1) == reference.argmax(-1)).float().mean()),
            "max_abs_error": float(error.max()),
            "mean_abs_error": float(error.mean()),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
