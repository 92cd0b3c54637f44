#!/usr/bin/env python3
"""Times the PyTorch twin's forward pass on the GPU and prints one JSON line: eager fp32,
eager bf16 autocast, and (with --compile) torch.compile under bf16 autocast; CUDA events,
after warm-up, median of --repeats; peak GPU memory of each.

This twin is the accuracy oracle (tools/voxmamba_twin.py): its scan is a log-depth doubling
scan and its deformable taps are chunked, so it is NOT yet the "fair baseline" issue 4 asks
for (official Mamba scan kernel, one grid_sample for all taps). Its numbers are context only.
Usage: python3 tools/bench_twin.py --config base --size 128 [--repeats 20] [--compile]
"""
import argparse
import json
import statistics

import torch

import voxmamba_twin as twin


def time_forward(model, x, repeats, autocast):
    def run():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            return model(x)

    for _ in range(3):
        run()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return {"median_ms": round(statistics.median(times), 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="base")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    model = twin.build_model(twin.config_preset(args.config, 3), seed=1).cuda().eval()
    x = torch.randn(1, args.size, args.size, args.size, 1, device="cuda")
    result = {"benchmark": "twin_forward", "config": args.config, "input": [1, args.size, args.size, args.size, 1],
              "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "layout": "NCDHW",
              "fair_baseline": False, "eager_fp32": time_forward(model, x, args.repeats, False),
              "eager_bf16": time_forward(model, x, args.repeats, True)}
    if args.compile:
        result["compiled_bf16"] = time_forward(torch.compile(model), x, args.repeats, True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
