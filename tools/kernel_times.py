"""Per-kernel GPU times of one forward pass, from Nsight Compute's CSV.

The forward benchmark's --profile 1 makes every op wait for the GPU, which adds about 10 us an
op (its total exceeds the median by ~15%); Nsight Systems is not installed on the GPU machine.
Nsight Compute with only the duration metric (and the SM clock, read in the same pass) times
each kernel alone, with no wait between ops:

    ncu --clock-control none --cache-control none --csv --print-units base \\
        --metrics gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second \\
        build-gpu/bench/voxmamba_forward_benchmark --device cuda \\
        --config base --size 128 --repeats 1 > ncu.csv
    python3 tools/kernel_times.py ncu.csv [--table kernels.csv]

The benchmark's warm-up and timed passes launch the same kernels in the same order, the warm-up
some more besides (it converts the weights, and cuBLASLt times its candidates for the offset
heads' GEMMs and compares their bytes), so the timed pass is the longest run of kernels at the
end of the file whose kernels all appear, in order, in the run just before it, which ends
with the same kernel. (cuBLASLt's timing runs under ncu's replays too, so the wide GEMMs may
pick other candidates there than in a plain run: kernels/cuda/gemm_bias_lt.cu.) Prints one JSON
object: the pass's kernel count and total, its time per op class (the classes of issue 4:
deformable and depthwise convs, dense convs, linear maps, scans, norms, the rest) and its ten
longest kernels; --table writes every kernel of the pass (index, name, grid, block, us). With
sm__cycles_elapsed.avg.per_second among ncu's metrics, each class's time-weighted SM clock too
(class_clock_ghz), and each kernel's in the table.

    python3 tools/kernel_times.py --selftest     checks the parsing on a made-up file
"""

import argparse
import csv
import io
import json
import re
import sys

# First match wins: (class, substrings of the kernel's name).
CLASSES = (
    # finite_absmax and half_sample_copy make the float16 copy that 16-bit deformable convs
    # sample (scaled_half_copy before it had a halo, in older tables of bench/results);
    # deform_shared_points is the bf16 kernel before 99c52a6, in older tables of bench/results.
    ("depthwise_and_deformable", ("deform_kernel", "deform_shared_points", "depthwise", "finite_absmax",
                                  "half_sample_copy", "scaled_half_copy")),
    ("dense_convs", ("fprop", "filter_from_packed", "narrow_input", "resident_weight_conv", "im2col", "conv_transpose",
                     "scatter_blocks")),
    ("linear", ("nvjet", "gemm", "cutlass", "broadcast_rows", "few_outputs", "few_inputs")),
    ("scans", ("scan_", "causal_conv1d")),
    ("norms", ("instance_", "layer_norm", "finish_moments")),
)


def op_class(name):
    for label, parts in CLASSES:
        if any(p in name for p in parts):
            return label
    return "rest"


def short_name(name):
    """The kernel's name without its parameter list and namespaces."""
    name = re.sub(r"\(.*", "", name).replace("void ", "")
    return re.sub(r"voxmamba::|<unnamed>::|kernels::cuda::", "", name).strip()


CLOCK_METRIC = "sm__cycles_elapsed.avg.per_second"
CLOCK_UNITS = {"hz": 1e-9, "cycle/second": 1e-9, "khz": 1e-6, "mhz": 1e-3, "ghz": 1.0,
               "cycle/usecond": 1e-3, "cycle/nsecond": 1.0}


def read_kernels(text):
    """[(name, grid, block, microseconds, SM clock in GHz or None)] in launch order, from ncu's
    --csv output (which interleaves the program's own output and ==PROF== lines). The clock is
    read where ncu also collected sm__cycles_elapsed.avg.per_second."""
    rows = csv.DictReader(line for line in io.StringIO(text) if line.startswith('"'))
    by_id = {}
    for row in rows:
        metric, unit = row.get("Metric Name"), row.get("Metric Unit", "")
        value = float(row["Metric Value"].replace(",", ""))
        kernel = by_id.setdefault(row["ID"], {"name": row["Kernel Name"], "grid": row["Grid Size"],
                                              "block": row["Block Size"], "us": None, "ghz": None})
        if metric == "gpu__time_duration.sum":
            kernel["us"] = value * {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(unit, 1e-3)
        elif metric == CLOCK_METRIC:
            kernel["ghz"] = value * CLOCK_UNITS.get(unit.lower(), 1e-9)
    return [(k["name"], k["grid"], k["block"], k["us"], k["ghz"]) for k in by_id.values() if k["us"] is not None]


def appears_in_order_before(keys, start):
    """Whether keys[start:] appear in order in keys[:start], the last as its last."""
    if start == 0 or keys[start - 1] != keys[-1]:
        return False
    j = start - 1
    for key in reversed(keys[start:]):
        while j >= 0 and keys[j] != key:
            j -= 1
        if j < 0:
            return False
        j -= 1
    return True


def last_pass(kernels):
    """The longest tail whose kernels (names and grids) appear in order in the kernels just
    before it, ending with the same one, else all."""
    keys = [(short_name(k[0]), k[1]) for k in kernels]
    for period in range(len(keys) // 2, 0, -1):
        if appears_in_order_before(keys, len(keys) - period):
            return kernels[-period:]
    return kernels


def has_clocks(kernels):
    return any(k[4] is not None for k in kernels)


def summary(kernels):
    classes, clocked = {}, {}
    for name, _, _, us, ghz in kernels:
        label = op_class(name)
        classes[label] = classes.get(label, 0.0) + us / 1e3
        if ghz is not None:  # time-weighted: sum of us * GHz, and of us
            weighted = clocked.setdefault(label, [0.0, 0.0])
            weighted[0] += us * ghz
            weighted[1] += us
    longest = sorted(kernels, key=lambda k: -k[3])[:10]
    result = {
        "kernels": len(kernels),
        "total_ms": round(sum(k[3] for k in kernels) / 1e3, 3),
        "class_ms": {label: round(ms, 3) for label, ms in sorted(classes.items(), key=lambda kv: -kv[1])},
        "longest": [{"kernel": short_name(n), "grid": g, "us": round(us, 1)} for n, g, _, us, _ in longest],
    }
    if clocked:
        # Tensor-core kernels run at a lower SM clock than CUDA-core ones (H200: 1.64-1.84 against
        # 1.94-1.98 GHz), which is part of what a class's time says.
        result["class_clock_ghz"] = {label: round(w[0] / w[1], 3) for label, w in clocked.items() if w[1] > 0}
    return result


def write_table(kernels, path):
    clocks = has_clocks(kernels)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["index", "kernel", "grid", "block", "microseconds"] + (["sm_clock_ghz"] if clocks else []))
        for i, (name, grid, block, us, ghz) in enumerate(kernels):
            clock = [round(ghz, 3) if ghz is not None else ""] if clocks else []
            out.writerow([i, short_name(name), grid, block, round(us, 2)] + clock)


def selftest():
    header = '"ID","Kernel Name","Grid Size","Block Size","Metric Name","Metric Unit","Metric Value"\n'

    def row(i, name, grid, ns):
        return f'"{i}","{name}","{grid}","(256, 1, 1)","gpu__time_duration.sum","ns","{ns:,}"\n'

    forward = [("void voxmamba::<unnamed>::deform_kernel<__half, 8, 3>(const T1 *)", "(2048, 1, 1)", 1_400_000),
               ("sm90_xmma_fprop_implicit_gemm_f16f16", "(15, 8, 1)", 1_200_000),
               ("void voxmamba::<unnamed>::narrow_input_mma_kernel<__half>(const T1 *)", "(528, 1, 1)", 170_000),
               ("void voxmamba::kernels::cuda::<unnamed>::resident_weight_conv_kernel<__half>(const T1 *)",
                "(132, 1, 1)", 730_000),
               ("void voxmamba::<unnamed>::instance_stats_kernel<__half, 8>(const T1 *)", "(1, 780, 1)", 80_000),
               ("void voxmamba::<unnamed>::map_kernel<8, __half, Add>(long)", "(6144, 1, 1)", 20_000),
               ("void voxmamba::<unnamed>::deform_shared_points_kernel<__nv_bfloat16, 8, 3, 2>(const T1 *)",
                "(2048, 1, 1)", 600_000),
               ("void voxmamba::<unnamed>::few_outputs_kernel<__half, float>(const T1 *)", "(8192, 1, 1)", 70_000),
               ("void voxmamba::kernels::cuda::<unnamed>::half_sample_copy_kernel<__nv_bfloat16>(const uint4 *)",
                "(6144, 1, 1)", 30_000)]
    warmup_only = [("void voxmamba::<unnamed>::cast_kernel<float, __half>(const T1 *)", "(65, 1, 1)", 2_000)]
    text = "==PROF== Connected to process 1\n" + header
    i = 0
    for name, grid, ns in warmup_only + forward + forward:
        text += row(i, name, grid, ns + (i % 3))  # times differ between passes, names do not
        i += 1
    text += '{"benchmark": "forward"}\n'
    kernels = read_kernels(text)
    assert len(kernels) == 19, kernels
    tail = last_pass(kernels)
    assert [short_name(k[0]) for k in tail] == [short_name(k[0]) for k in kernels[10:]], tail
    s = summary(tail)
    assert s["kernels"] == 9, s
    assert abs(s["class_ms"]["depthwise_and_deformable"] - 2.03) < 1e-3, s  # both deformable kernels, the copy
    assert abs(s["class_ms"]["linear"] - 0.07) < 1e-3, s  # the narrow linear kernel
    assert abs(s["class_ms"]["dense_convs"] - 2.10) < 1e-3, s  # cuDNN and our two tensor-core conv kernels
    assert abs(s["class_ms"]["norms"] - 0.08) < 1e-3 and abs(s["class_ms"]["rest"] - 0.02) < 1e-3, s
    assert s["longest"][0]["kernel"] == "deform_kernel<__half, 8, 3>", s
    assert last_pass(kernels[:3]) == kernels[:3]  # nothing repeats: all of it
    # A warm-up with kernels of its own in the middle of the pass (cuBLASLt's timing): the
    # timed pass is still the last nine.
    timing = [("nvjet_sm90_hsh_96x384_64x3_2x1_v_bz_coopA_NNN", "(132, 1, 1)", 300_000),
              ("void voxmamba::kernels::cuda::<unnamed>::count_differences_kernel(const T1 *)", "(6144, 1, 1)",
               700_000)]
    text = header
    for i, (name, grid, ns) in enumerate(warmup_only + forward[:3] + timing + forward[3:] + forward):
        text += row(i, name, grid, ns)
    with_timing = read_kernels(text)
    assert last_pass(with_timing) == with_timing[-9:], last_pass(with_timing)
    assert not has_clocks(with_timing) and "class_clock_ghz" not in summary(with_timing[-9:])
    # With each kernel's SM clock (ncu's per_second metric, in Hz with --print-units base):
    # the clock of a class is its kernels' time-weighted mean.
    text = header
    for i, (name, grid, ns) in enumerate(forward):
        text += row(i, name, grid, ns)
        ghz = 1.7 if "fprop" in name or "resident" in name else 1.98
        text += f'"{i}","{name}","{grid}","(256, 1, 1)","{CLOCK_METRIC}","hz","{ghz * 1e9:,.0f}"\n'
    clocked = read_kernels(text)
    assert len(clocked) == 9 and abs(clocked[0][4] - 1.98) < 1e-9 and clocked[0][3] == 1400.0, clocked
    s = summary(clocked)
    assert s["class_clock_ghz"]["dense_convs"] == round((1200 * 1.7 + 170 * 1.98 + 730 * 1.7) / 2100, 3), s
    assert s["class_clock_ghz"]["depthwise_and_deformable"] == 1.98, s
    print("kernel_times self-test passed")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="?", help="ncu --csv output (duration metric, optionally the SM clock)")
    ap.add_argument("--table", help="write the pass's kernels to this CSV file")
    ap.add_argument("--selftest", action="store_true", help="check the parsing on a made-up file and exit")
    args = ap.parse_args(argv)
    if args.selftest:
        selftest()
        return 0
    if not args.csv:
        ap.error("give the ncu CSV file (or --selftest)")
    try:
        with open(args.csv) as f:
            kernels = read_kernels(f.read())
    except OSError as e:
        print(f"kernel_times: cannot read {args.csv}: {e.strerror}", file=sys.stderr)
        return 1
    if not kernels:
        print(f"kernel_times: {args.csv} holds no gpu__time_duration.sum rows (was ncu run with "
              "--csv --metrics gpu__time_duration.sum?)", file=sys.stderr)
        return 1
    forward = last_pass(kernels)
    if args.table:
        write_table(forward, args.table)
    print(json.dumps(summary(forward)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
