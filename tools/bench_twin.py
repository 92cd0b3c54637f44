#!/usr/bin/env python3
"""The fair PyTorch baseline of issue 4: times the PyTorch twin's forward pass on the GPU, next to the
engine, on the same weights and input, in the same run, and prints ONE JSON object.

    python3 tools/bench_twin.py --weights W.h5 --input X.npy [--repeats 20] [--warmup 3] [--compile]
        [--layouts ncdhw,channels_last] [--engine "CMD"] [--out result.json]
    python3 tools/bench_twin.py --config base --size 128 --seed 1 ...   (seeded weights and input)

Variants, each after --warmup passes, timed with CUDA events, median (and min) of --repeats, with the
peak GPU memory (torch.cuda.max_memory_allocated over the timed passes, weights included):
  eager_bf16.<layout>   eager under torch.autocast(bfloat16), torch.no_grad(), internal layout NCDHW
                        ("ncdhw") or torch.channels_last_3d ("channels_last");
  compiled_bf16         torch.compile(model) under the same autocast, in the faster eager layout unless
                        --compile-layout says otherwise; "compile_s" is the first call's wall time.
A failing variant (torch.compile, out of memory) records its error instead of stopping the run.

The twin is the fair baseline a good PyTorch engineer would write (tools/voxmamba_twin.py with
SCAN_IMPL set here): every deformable conv's K^3 taps in one grid_sample call (chunked over taps only
beyond DEFORM_MAX_ELEMENTS), cuDNN for the plain convs (torch.backends.cudnn.benchmark = True), and the
selective scan in a work-efficient log-depth formulation (tools/fair_scan.py, "oddeven" by default;
--scan chunked / doubling for the others), no Python loop over tokens or taps.

--engine "CMD" runs CMD through the shell BEFORE the twin touches the GPU and embeds the JSON object on
the last line of its stdout (it must hold "median_ms" and, on a GPU, "peak_gpu_memory_gib") as "engine".
In CMD, {weights} and {input} are replaced by the paths of the weights file and input array the twin
uses (written to --workdir when they were generated from --config/--size/--seed), e.g.
    --engine "build-gpu/bench/voxmamba_forward_benchmark --device cuda --model {weights} --input {input} --repeats 20"
Then "ratios" holds eager_best_ms / engine_ms, compiled_ms / engine_ms, the engine's TFLOP/s from
--tflop (default: the engine's own "gflop" when it reports one, else 3.18 for base at 1x128^3) and its
share of --peak-tflops (800, the H100's measured bf16 GEMM rate), and the peak-memory comparison.

Measured on the H100 (torch 2.11 cu130, cuDNN 9.19, seeded base, 1x128^3, 2026-11-25, before any engine):
eager bf16 NCDHW 305 ms (6.7 GiB peak), channels_last_3d 339 ms; torch.compile 197 ms (9.0 GiB) after
345 s of compiling with the scan traced (--compile-scan functional, the default), 243 ms after 142 s
with --compile-scan eager. Budget the compile: it alone takes most of a 10-minute device command.

Exit status: 0 when the eager variants (and the engine, if asked for) ran; 1 otherwise; 77 without CUDA.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BASE_128_TFLOP = 3.18
LAYOUTS = ("ncdhw", "channels_last")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="HDF5 weights file (default: seeded random weights of --config)")
    ap.add_argument("--input", help="input .npy, float32 [1, D, H, W, C_in] (default: seeded normal noise)")
    ap.add_argument("--config", default="base", choices=("small", "base"), help="preset without --weights")
    ap.add_argument("--classes", type=int, default=3, help="classes of the preset without --weights")
    ap.add_argument("--size", type=int, default=128, help="cube edge of the input without --input")
    ap.add_argument("--seed", type=int, default=1, help="seed of generated weights and input")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--layouts", default="ncdhw,channels_last", help="comma list of ncdhw, channels_last")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    ap.add_argument("--compile-layout", choices=("best",) + LAYOUTS, default="best",
                    help="layout of the compiled variant (default: the faster eager one)")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: PyTorch's default)")
    ap.add_argument("--compile-scan", choices=("functional", "eager"), default="functional",
                    help="the scan under torch.compile: traced into the graph (its functional recursion) or "
                         "left out of it (graph break; runs eagerly in place; much faster to compile)")
    ap.add_argument("--compile-radix", type=int, default=None,
                    help="group size of the traced scan recursion under torch.compile (default: fair_scan's "
                         "FUNCTIONAL_RADIX; 2 = odd/even)")
    ap.add_argument("--scan", choices=("oddeven", "chunked", "doubling"), default="oddeven",
                    help="selective-scan formulation of the twin (doubling = the parity oracle's)")
    ap.add_argument("--scan-chunk", type=int, default=64, help="chunk length of --scan chunked")
    ap.add_argument("--engine", help="shell command of the engine benchmark; {weights} and {input} are replaced")
    ap.add_argument("--engine-timeout", type=float, default=1800.0, help="seconds")
    ap.add_argument("--workdir", help="where generated weights/input are written (default: a temporary folder)")
    ap.add_argument("--tflop", type=float, default=None, help="TFLOP of one forward (multiply-add = 2)")
    ap.add_argument("--peak-tflops", type=float, default=800.0, help="reference peak TFLOP/s for the share")
    ap.add_argument("--out", help="also write the JSON object to this file")
    args = ap.parse_args(argv)
    args.layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    bad = [s for s in args.layouts if s not in LAYOUTS]
    if bad or not args.layouts:
        ap.error(f"--layouts takes a comma list of {', '.join(LAYOUTS)}, got {bad or 'nothing'}")
    if args.repeats < 1 or args.warmup < 0:
        ap.error("--repeats must be >= 1 and --warmup >= 0")
    if args.input is None and (args.size < 16 or args.size % 16):
        ap.error("--size must be a positive multiple of 16")
    return args


def log(msg):
    print(f"[bench_twin] {msg}", file=sys.stderr, flush=True)


def tail(text, n=2000):
    text = text or ""
    return text[-n:]


# --------------------------------------------------------------------------------------------- engine

def run_engine(cmd, timeout):
    """Run the engine benchmark (shell command) and return the JSON object on its last stdout line."""
    log(f"engine: {cmd}")
    block = {"command": cmd}
    t0 = time.perf_counter()
    # its own process group, so that a timeout ends the shell's children too
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, start_new_session=True)
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        stdout, stderr = p.communicate()
        block.update(error=f"timed out after {timeout:.0f} s", stdout_tail=tail(stdout), stderr_tail=tail(stderr))
        log(f"engine failed: {block['error']}")
        return block, False
    block["wall_s"] = round(time.perf_counter() - t0, 2)
    block["returncode"] = p.returncode
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError as e:
            block["error"] = f"last stdout line is not JSON: {e}"
    else:
        block["error"] = "no output on stdout"
    if p.returncode != 0:
        block["error"] = f"exit status {p.returncode}" + (f"; {block['error']}" if "error" in block else "")
    if isinstance(result, dict):
        block["result"] = result
        if "median_ms" not in result:
            block["error"] = "engine JSON has no median_ms"
    elif result is not None:
        block["error"] = "engine output is JSON but not an object"
    if "error" in block:
        block["stdout_tail"] = tail(stdout)
        block["stderr_tail"] = tail(stderr)
        log(f"engine failed: {block['error']}")
        return block, False
    return block, True


# --------------------------------------------------------------------------------------------- twin

def timed_variant(torch, fn, x, warmup, repeats, reference=None):
    """Warm-up, then CUDA-event timing of `repeats` forwards under no_grad + bf16 autocast."""
    out = {}
    with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        for _ in range(warmup):
            y = fn(x)
            del y
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        y = None
        for _ in range(repeats):
            y = None
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            y = fn(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    out["median_ms"] = round(statistics.median(times), 3)
    out["min_ms"] = round(min(times), 3)
    out["max_ms"] = round(max(times), 3)
    out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
    out["repeats"] = repeats
    out["warmup"] = warmup
    out["ms"] = [round(t, 3) for t in times]
    yf = y.float()
    out["logits_finite"] = bool(torch.isfinite(yf).all())
    if reference is not None:
        out["max_abs_diff_vs_first_variant"] = float((yf - reference).abs().max())
    return out, yf


def set_layout(twin, model, layout):
    twin.set_channels_last_3d(model, layout == "channels_last")


def run_twin(args, model, x, twin, torch, result):
    ok = True
    eager = {}
    reference = None
    spread = None
    for layout in args.layouts:
        log(f"eager bf16, {layout} ...")
        try:
            set_layout(twin, model, layout)
            r, y = timed_variant(torch, model, x, args.warmup, args.repeats, reference)
            if reference is None:
                reference = y
                spread = float(y.max() - y.min())
            del y
            eager[layout] = r
            log(f"eager bf16, {layout}: median {r['median_ms']} ms, peak {r['peak_gib']} GiB")
        except Exception as e:  # noqa: BLE001  (out of memory, a missing kernel: record, go on)
            eager[layout] = {"error": f"{type(e).__name__}: {e}"[:4000], "traceback": tail(traceback.format_exc())}
            log(f"eager bf16, {layout} failed: {type(e).__name__}: {e}")
        torch.cuda.empty_cache()
    result["eager_bf16"] = eager
    result["logits_spread_first_variant"] = spread
    good = {k: v for k, v in eager.items() if "median_ms" in v}
    if not good:
        ok = False
    else:
        best = min(good, key=lambda k: good[k]["median_ms"])
        result["eager_best"] = dict(layout=best, median_ms=good[best]["median_ms"], min_ms=good[best]["min_ms"],
                                    peak_gib=good[best]["peak_gib"])
    if args.compile:
        layout = args.compile_layout
        if layout == "best":
            layout = result.get("eager_best", {}).get("layout", args.layouts[0])
        comp = {"layout": layout, "mode": args.compile_mode or "default", "scan_path": args.compile_scan}
        fair_scan = sys.modules.get("fair_scan")
        saved = (fair_scan.EAGER_UNDER_COMPILE, fair_scan.FUNCTIONAL_RADIX) if fair_scan else None
        try:
            if fair_scan is not None:
                fair_scan.EAGER_UNDER_COMPILE = args.compile_scan == "eager"
                if args.compile_radix:
                    fair_scan.FUNCTIONAL_RADIX = args.compile_radix
                if args.compile_scan == "functional":
                    comp["scan_radix"] = fair_scan.FUNCTIONAL_RADIX
            if args.scan == "doubling":
                comp["scan_path"] = "traced (twin's doubling scan)"
            set_layout(twin, model, layout)
            kwargs = {"mode": args.compile_mode} if args.compile_mode else {}
            cmodel = torch.compile(model, **kwargs)
            log(f"torch.compile ({comp['mode']}, {layout}): first call ...")
            t0 = time.perf_counter()
            with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                y = cmodel(x)
            torch.cuda.synchronize()
            comp["compile_s"] = round(time.perf_counter() - t0, 2)
            del y
            log(f"compiled in {comp['compile_s']} s; timing ...")
            r, y = timed_variant(torch, cmodel, x, max(1, args.warmup), args.repeats, reference)
            del y
            comp.update(r)
            log(f"compiled bf16: median {r['median_ms']} ms, peak {r['peak_gib']} GiB")
        except Exception as e:  # noqa: BLE001  (a failing compile is a result, not a crash)
            comp["error"] = f"{type(e).__name__}: {e}"[:4000]
            comp["traceback"] = tail(traceback.format_exc())
            log(f"torch.compile failed: {comp['error'][:300]}")
        finally:
            if fair_scan is not None:
                fair_scan.EAGER_UNDER_COMPILE, fair_scan.FUNCTIONAL_RADIX = saved
        result["compiled_bf16"] = comp
        result["compile_s"] = comp.get("compile_s")
        torch.cuda.empty_cache()
    return ok


def ratios(args, result, is_base_128):
    eng = result.get("engine", {}).get("result")
    if not isinstance(eng, dict) or not eng.get("median_ms"):
        return None
    engine_ms = float(eng["median_ms"])
    r = {"engine_ms": engine_ms}
    if args.tflop is not None:
        tflop, src = args.tflop, "--tflop"
    elif isinstance(eng.get("gflop"), (int, float)) and eng["gflop"] > 0:
        tflop, src = float(eng["gflop"]) / 1e3, "engine gflop"
    elif is_base_128:
        tflop, src = BASE_128_TFLOP, "base 1x128^3 (network.md)"
    else:
        tflop, src = None, None
    best = result.get("eager_best")
    if best:
        r["eager_best_ms"] = best["median_ms"]
        r["eager_best_over_engine"] = round(best["median_ms"] / engine_ms, 3)
    comp = result.get("compiled_bf16", {})
    if "median_ms" in comp:
        r["compiled_ms"] = comp["median_ms"]
        r["compiled_over_engine"] = round(comp["median_ms"] / engine_ms, 3)
    if tflop:
        r["tflop_per_forward"] = tflop
        r["tflop_source"] = src
        r["engine_tflop_per_s"] = round(tflop / (engine_ms / 1e3), 2)
        r["engine_share_of_peak"] = round(tflop / (engine_ms / 1e3) / args.peak_tflops, 4)
        r["peak_tflop_per_s_reference"] = args.peak_tflops
        if best:
            r["eager_best_tflop_per_s"] = round(tflop / (best["median_ms"] / 1e3), 2)
        if "median_ms" in comp:
            r["compiled_tflop_per_s"] = round(tflop / (comp["median_ms"] / 1e3), 2)
    peak = eng.get("peak_gpu_memory_gib")
    if isinstance(peak, (int, float)):
        r["engine_peak_gib"] = peak
        twin_peaks = {f"eager_bf16.{k}": v["peak_gib"] for k, v in result.get("eager_bf16", {}).items()
                      if "peak_gib" in v}
        if "peak_gib" in comp:
            twin_peaks["compiled_bf16"] = comp["peak_gib"]
        r["twin_peak_gib"] = twin_peaks
        if best:
            r["engine_peak_not_above_eager_best"] = peak <= best["peak_gib"]
        if "peak_gib" in comp:
            r["engine_peak_not_above_compiled"] = peak <= comp["peak_gib"]
        if twin_peaks:
            r["engine_peak_not_above_every_twin_variant"] = all(peak <= v for v in twin_peaks.values())
    return r


# --------------------------------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("bench_twin: CUDA is not available (this benchmark needs a GPU); skipped", file=sys.stderr)
        return 77
    import voxmamba_twin as twin

    result = {"benchmark": "twin_forward", "fair_baseline": True}
    # ---- weights and input (on the CPU; nothing touches the GPU before the engine has run)
    workdir = args.workdir
    tmp = None
    needs_files = bool(args.engine) and ("{weights}" in args.engine or "{input}" in args.engine)
    if args.weights:
        model, config = twin.load_hdf5(args.weights)
        weights_path = os.path.abspath(args.weights)
        result["weights"] = weights_path
    else:
        config = twin.config_preset(args.config, args.classes)
        model = twin.build_model(config, seed=args.seed).eval()
        weights_path = None
        result["weights"] = f"seeded: config {args.config}, classes {args.classes}, seed {args.seed}"
    if args.input:
        arr = np.load(args.input)
        input_path = os.path.abspath(args.input)
        result["input_file"] = input_path
    else:
        edge = args.size
        arr = np.random.RandomState(args.seed).standard_normal((1, edge, edge, edge, model.cfg["in_channels"]))
        arr = arr.astype(np.float32)
        input_path = None
        result["input_file"] = f"seeded: standard normal, seed {args.seed}"
    if arr.dtype != np.float32 or arr.ndim != 5 or arr.shape[-1] != model.cfg["in_channels"]:
        print(f"bench_twin: input must be float32 [N, D, H, W, {model.cfg['in_channels']}], "
              f"got {arr.dtype} {list(arr.shape)}", file=sys.stderr)
        return 2
    if needs_files and (weights_path is None or input_path is None):
        if workdir is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench_twin_")
            workdir = tmp.name
        os.makedirs(workdir, exist_ok=True)
        if weights_path is None:
            weights_path = os.path.join(workdir, f"{args.config}_seed{args.seed}.h5")
            twin.save_hdf5(model, config, weights_path)
        if input_path is None:
            input_path = os.path.join(workdir, f"input_{'x'.join(map(str, arr.shape))}_seed{args.seed}.npy")
            np.save(input_path, arr)
    result["input"] = list(arr.shape)
    result["config"] = {k: model.cfg[k] for k in ("dims", "depths", "hidden", "deformable", "num_classes")}
    preset_base = twin._network_config(twin.config_preset("base", model.cfg["num_classes"]))
    is_base_128 = model.cfg == preset_base and list(arr.shape[:4]) == [1, 128, 128, 128]

    # ---- engine first, while this process holds no GPU memory
    engine_ok = True
    if args.engine:
        cmd = args.engine.replace("{weights}", _shell_quote(weights_path or "")).replace(
            "{input}", _shell_quote(input_path or ""))
        result["engine"], engine_ok = run_engine(cmd, args.engine_timeout)

    # ---- environment
    torch.backends.cudnn.benchmark = True
    twin.SCAN_IMPL = args.scan
    twin.SCAN_CHUNK = args.scan_chunk
    props = torch.cuda.get_device_properties(0)
    result.update({
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "gpu": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(props.total_memory / 2 ** 30, 1),
        "precision": "bf16 autocast (torch.autocast(cuda, bfloat16)), torch.no_grad()",
        "timer": "cuda events",
        "layouts": args.layouts,
        "cudnn_benchmark": True,
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "scan_impl": args.scan,
        "scan_chunk": args.scan_chunk if args.scan == "chunked" else None,
        "scan_dtype": "float32",
        "scan_max_elements": twin.SCAN_MAX_ELEMENTS,
        "deform": "all K^3 taps in one grid_sample (align_corners=False), chunked over taps above "
                  f"{twin.DEFORM_MAX_ELEMENTS} sampled elements",
    })

    # ---- twin
    model = model.cuda().eval()
    x = torch.from_numpy(arr).cuda()
    twin_ok = run_twin(args, model, x, twin, torch, result)
    result["ratios"] = ratios(args, result, is_base_128)
    if tmp is not None:
        tmp.cleanup()
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    print(text, flush=True)
    return 0 if (twin_ok and engine_ok) else 1


def _shell_quote(s):
    import shlex
    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
