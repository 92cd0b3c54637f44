"""Fast selective scans in plain PyTorch: the "fair baseline" scans of the twin (issue 4).

The twin's default scan (voxmamba_twin.selective_scan) is a Hillis-Steele doubling over the whole
sequence: log2(L) full passes over the [N, L, E, S] state tensor, each several reads and writes. It
stays the accuracy oracle. What a good PyTorch engineer would write instead, with no custom kernel
and no Python loop over tokens, is one of the scans here. All compute h_t = a_t h_{t-1} + b_t with
a_t = exp(Δ_t A), b_t = Δ_t u_t B_t (per channel e and state s, h_{-1} = 0) and
y_t = Σ_s C_t,s h_t,s + D u_t, in float32 with autocast off, chunked over E only for memory.

impl = "oddeven" (the default, fastest in eager):
    work-efficient log-depth scan (recursive odd/even reduction, the linear-recurrence form of
    Blelloch's scan): pair neighbours (2i, 2i+1) and compose them into the odd element
    ((a, b) pairs compose as (a2 a1, a2 b1 + b2)), scan the L/2 odd elements recursively, then finish
    the even ones from their left neighbour. In place on strided views under no_grad: about 11
    element accesses per state element in all (vs about 10 per doubling step, log2(L) steps), two
    state-sized buffers and no temporaries. With autograd, or while torch.compile traces, a
    functional version of the same recursion runs (reshape into pairs, stack back), which Inductor
    fuses level by level.
impl = "chunked":
    split L into chunks of T tokens (padded with identity elements (a=1, b=0) to a multiple of T),
    scan inside every chunk in parallel by doubling (log2 T steps, keeping the cumulative decay),
    scan the chunk carries (L/T elements, odd/even), then apply them:
    h_t = h_local_t + a_cum_t * H_{chunk-1}.
impl = "doubling": the twin's oracle formulation (whole-sequence doubling), for comparison.

Measured (H100, torch 2.11, base stage-0 shape N=1, L=262,144, E=96, S=16, fp32, 2 E-chunks):
twin doubling 96.9 ms; oddeven in place 11.5 ms (2.4 GiB peak); chunked T=64 38.6 ms, T=256 50.7 ms;
oddeven functional eager 17.9 ms, under torch.compile 6.8 ms (27 s to compile that one scan).
On a 2-core CPU (L=32,768, E=8, S=16, best of 15): doubling ~56 ms, oddeven ~13 ms, chunked 31-38 ms.

All three match voxmamba_twin.selective_scan_reference (float64) to about 1e-6 relative in float32;
tools/selftest_twin.py checks it. Log-space cumsum formulations (exp(-cumsum(Δ A))) are avoided on
purpose: with A down to -16 and Δ up to ~1 they overflow float32 within a few tokens.
"""

import torch

__all__ = ["selective_scan", "scan_inplace", "scan_functional", "chunked_scan", "IMPLS"]

IMPLS = ("oddeven", "chunked", "doubling")
# Default implementation and chunk length of the "chunked" one.
DEFAULT_IMPL = "oddeven"
DEFAULT_CHUNK = 64
# Upper bound on the elements of one [N, L, E_chunk, S] state tensor (the scan chunks over E beyond it).
MAX_ELEMENTS = 1 << 28
# "auto": functional recursion when autograd needs it or torch.compile is tracing, in place otherwise.
# True / False force one of them (the bench may force the functional one for torch.compile).
FUNCTIONAL = "auto"
# True: while torch.compile traces, the scan is left out of the graph (a graph break; it runs eagerly,
# in place). Far shorter compile times (the unrolled log-depth recursion is hundreds of ops per scan),
# at the price of the fused scan.
EAGER_UNDER_COMPILE = False
# Group size of the functional recursion (2 = odd/even; see scan_functional).
FUNCTIONAL_RADIX = 2


def _is_compiling():
    comp = getattr(torch, "compiler", None)
    if comp is not None and hasattr(comp, "is_compiling"):          # torch >= 2.3
        return bool(comp.is_compiling())
    dyn = getattr(torch, "_dynamo", None)                           # torch 2.0 .. 2.2
    if dyn is not None and hasattr(dyn, "is_compiling"):
        return bool(dyn.is_compiling())
    return False                                                    # torch 1.x: no compiler


def _use_functional(*tensors):
    if FUNCTIONAL is True or FUNCTIONAL is False:
        return FUNCTIONAL
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return True
    return _is_compiling()


# ------------------------------------------------------------------------------------ linear-recurrence scans
# All scans run over dim 1 of a and b ([M, n, ...]): h_t = a_t h_{t-1} + b_t, h_{-1} = 0.

def scan_inplace(a, b):
    """Odd/even (work-efficient, log-depth) inclusive scan, in place: on return b holds h; a is
    overwritten (at odd positions of every level with partial products). No autograd."""
    n = a.shape[1]
    if n < 2:
        return b
    m = n // 2
    ae, ao = a[:, 0:2 * m:2], a[:, 1:2 * m:2]
    be, bo = b[:, 0:2 * m:2], b[:, 1:2 * m:2]
    bo.addcmul_(ao, be)             # odd element := (even, odd) composed
    ao.mul_(ae)
    scan_inplace(ao, bo)            # now b[2i+1] = h_{2i+1}
    k = (n - 1) // 2                # even positions 2, 4, .. <= n-1 take h from their left neighbour
    if k:
        b[:, 2::2].addcmul_(a[:, 2::2], b[:, 1:2 * k:2])
    return b


def scan_functional(a, b, radix=None):
    """The same recursion out of place (autograd- and torch.compile-friendly). Returns h.

    radix 2 is the odd/even recursion; radix r > 2 groups r neighbours per level (composed in r - 1
    unrolled steps, which Inductor fuses into one kernel), so there are log_r(L) levels instead of
    log_2(L): fewer kernels, less traffic and a shorter compile under torch.compile."""
    radix = int(radix or FUNCTIONAL_RADIX)
    if radix > 2:
        return _scan_functional_radix(a, b, radix)
    n = a.shape[1]
    if n < 2:
        return b
    pad = n % 2
    if pad:                          # one identity element (a=1, b=0) at the end; dropped afterwards
        a = torch.cat([a, torch.ones_like(a[:, :1])], 1)
        b = torch.cat([b, torch.zeros_like(b[:, :1])], 1)
    m = (n + pad) // 2
    a2 = a.reshape(a.shape[0], m, 2, *a.shape[2:])
    b2 = b.reshape(b.shape[0], m, 2, *b.shape[2:])
    ae, ao = a2[:, :, 0], a2[:, :, 1]
    be, bo = b2[:, :, 0], b2[:, :, 1]
    ho = scan_functional(ao * ae, ao * be + bo)                     # h at odd positions
    prev = torch.cat([torch.zeros_like(ho[:, :1]), ho[:, :-1]], 1)  # h_{2i-1}, 0 before the first
    he = ae * prev + be
    h = torch.stack([he, ho], 2).reshape(b.shape)
    return h[:, :n] if pad else h


def _scan_functional_radix(a, b, r):
    n = a.shape[1]
    if n < 2:
        return b
    r = min(r, n)
    pad = (-n) % r
    if pad:                          # identity elements (a=1, b=0) at the end; dropped afterwards
        a = torch.cat([a, a.new_ones((a.shape[0], pad) + tuple(a.shape[2:]))], 1)
        b = torch.cat([b, b.new_zeros((b.shape[0], pad) + tuple(b.shape[2:]))], 1)
    m = (n + pad) // r
    a2 = a.reshape(a.shape[0], m, r, *a.shape[2:])
    b2 = b.reshape(b.shape[0], m, r, *b.shape[2:])
    pa, pb = [a2[:, :, 0]], [b2[:, :, 0]]           # inclusive prefixes inside each group of r
    for j in range(1, r):
        aj = a2[:, :, j]
        pa.append(aj * pa[-1])
        pb.append(aj * pb[-1] + b2[:, :, j])
    H = _scan_functional_radix(pa[-1], pb[-1], r)   # h at every group's last element
    prev = torch.cat([torch.zeros_like(H[:, :1]), H[:, :-1]], 1)   # carry into each group
    h = torch.stack([pb[j] + pa[j] * prev for j in range(r - 1)] + [H], 2).reshape(b.shape)
    return h[:, :n] if pad else h


def _doubling_inplace(a, b, keep_a=True):
    """Hillis-Steele doubling over dim 1, in place on b (and a, which ends as the cumulative product
    when keep_a). Used inside short chunks."""
    n = a.shape[1]
    k = 1
    while k < n:
        b[:, k:].add_(a[:, k:] * b[:, :-k])
        if keep_a or 2 * k < n:
            a[:, k:] = a[:, k:] * a[:, :-k]
        k *= 2
    return b


def _doubling_functional(a, b, keep_a=True):
    n = a.shape[1]
    k = 1
    while k < n:
        b = torch.cat([b[:, :k], a[:, k:] * b[:, :-k] + b[:, k:]], 1)
        if keep_a or 2 * k < n:
            a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], 1)
        k *= 2
    return a, b


def chunked_scan(a, b, chunk=DEFAULT_CHUNK, functional=False):
    """Chunked inclusive scan over dim 1: doubling inside chunks of `chunk` tokens, odd/even scan of
    the chunk carries, then h_t = h_local_t + a_cum_t * H_prev. Returns h (aliases b when in place)."""
    M, n = a.shape[0], a.shape[1]
    T = max(1, min(int(chunk), n))
    nc = -(-n // T)
    pad = nc * T - n
    if pad:
        a = torch.cat([a, a.new_ones((M, pad) + tuple(a.shape[2:]))], 1)
        b = torch.cat([b, b.new_zeros((M, pad) + tuple(b.shape[2:]))], 1)
    rest = tuple(a.shape[2:])
    ac = a.reshape(M * nc, T, *rest)          # every chunk a batch entry
    bc = b.reshape(M * nc, T, *rest)
    if functional:
        ac, bc = _doubling_functional(ac, bc, keep_a=True)
    else:
        _doubling_inplace(ac, bc, keep_a=True)
    ac = ac.reshape(M, nc, T, *rest)          # a_cum within the chunk
    bc = bc.reshape(M, nc, T, *rest)          # h within the chunk, from a zero carry
    if nc > 1:
        carry_a = ac[:, :, -1].clone()
        carry_b = bc[:, :, -1].clone()
        if functional:
            H = scan_functional(carry_a, carry_b)
            prev = H[:, :-1].unsqueeze(2)
            bc = torch.cat([bc[:, :1], bc[:, 1:] + ac[:, 1:] * prev], 1)
        else:
            H = scan_inplace(carry_a, carry_b)
            bc[:, 1:].addcmul_(ac[:, 1:], H[:, :-1].unsqueeze(2))
    h = bc.reshape(M, nc * T, *rest)
    return h[:, :n] if pad else h


# ------------------------------------------------------------------------------------ selective scan

def _compiler_disable(fn):
    comp = getattr(torch, "compiler", None)
    if comp is not None and hasattr(comp, "disable"):              # torch >= 2.1
        return comp.disable(fn)
    dyn = getattr(torch, "_dynamo", None)
    if dyn is not None and hasattr(dyn, "disable"):                 # torch 2.0
        return dyn.disable(fn)
    return fn                                                       # torch 1.x: nothing to disable


def selective_scan(u, delta, A, B, C, D, impl=None, chunk=None, dtype=torch.float32, max_elements=None):
    """Selective scan with the same contract as voxmamba_twin.selective_scan.

    u, delta: [N, L, E]; A: [E, S] (already negative); B, C: [N, L, S]; D: [E]. Returns y [N, L, E]
    in u's dtype; computed in `dtype` (float32) with autocast off."""
    if EAGER_UNDER_COMPILE and _is_compiling():
        return _selective_scan_outside_graph(u, delta, A, B, C, D, impl, chunk, dtype, max_elements)
    return _selective_scan(u, delta, A, B, C, D, impl, chunk, dtype, max_elements)


def scan_with(recurrence, u, delta, A, B, C, D, dtype, max_elements):
    """The selective scan around a recurrence h_t = a_t h_{t-1} + b_t (h = recurrence(a, b) over
    dim 1): discretisation, the output contraction with C and the D skip, computed in `dtype` with
    autocast off and chunked over E above max_elements. voxmamba_twin.selective_scan (the oracle)
    and the fast scans here share it, so they differ only in the recurrence."""
    out_dtype = u.dtype
    dev_type = u.device.type if u.device.type in ("cuda", "cpu") else "cpu"
    with torch.autocast(device_type=dev_type, enabled=False):
        u, delta, A, B, C, D = (t.to(dtype) for t in (u, delta, A, B, C, D))
        N, L, E = u.shape
        S = A.shape[1]
        ec = max(1, min(E, max_elements // max(N * L * S, 1)))
        du = delta * u
        Ct = C.unsqueeze(-1)                                        # [N, L, S, 1]
        ys = []
        for e0 in range(0, E, ec):
            e1 = min(E, e0 + ec)
            a = torch.exp(delta[:, :, e0:e1, None] * A[e0:e1])     # [N, L, ec, S]
            b = du[:, :, e0:e1, None] * B[:, :, None, :]           # [N, L, ec, S]
            h = recurrence(a, b)
            del a, b
            ys.append(torch.matmul(h, Ct).squeeze(-1))              # [N, L, ec]
            del h
        y = ys[0] if len(ys) == 1 else torch.cat(ys, -1)
        y = y + u * D
    return y.to(out_dtype)


def _selective_scan(u, delta, A, B, C, D, impl=None, chunk=None, dtype=torch.float32, max_elements=None):
    impl = impl or DEFAULT_IMPL
    if impl not in IMPLS:
        raise ValueError(f"unknown scan implementation {impl!r} (expected one of {', '.join(IMPLS)})")
    chunk = chunk or DEFAULT_CHUNK
    max_elements = max_elements or MAX_ELEMENTS
    functional = _use_functional(u, delta, A, B, C, D)

    def recurrence(a, b):
        if impl == "oddeven":
            return scan_functional(a, b) if functional else scan_inplace(a, b)
        if impl == "chunked":
            return chunked_scan(a, b, chunk, functional)
        return _doubling_functional(a, b, keep_a=False)[1] if functional else _doubling_inplace(a, b, keep_a=False)

    return scan_with(recurrence, u, delta, A, B, C, D, dtype, max_elements)


_selective_scan_outside_graph = _compiler_disable(_selective_scan)


# ------------------------------------------------------------------------------------ micro-benchmark

def _radix_call(r, *tensors):
    global FUNCTIONAL_RADIX
    saved, FUNCTIONAL_RADIX = FUNCTIONAL_RADIX, r
    try:
        return selective_scan(*tensors, impl="oddeven")
    finally:
        FUNCTIONAL_RADIX = saved


def _bench(argv=None):
    """Times the scans on random inputs of one shape: python3 tools/fair_scan.py [--device cuda]
    [--shape N,L,E,S] [--impls oddeven,chunked:64,doubling,twin] [--repeats 10]. One JSON line per
    implementation; "twin" is voxmamba_twin.selective_scan (the oracle's own code)."""
    import argparse
    import json
    import os
    import sys
    import time
    ap = argparse.ArgumentParser(description=_bench.__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shape", default="1,32768,8,16", help="N,L,E,S")
    ap.add_argument("--impls", default="twin,doubling,oddeven,chunked:16,chunked:64,chunked:256")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--functional", action="store_true", help="time the functional (autograd/compile) path")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of each (functional) scan")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import voxmamba_twin as twin
    global FUNCTIONAL
    FUNCTIONAL = bool(args.functional)
    N, L, E, S = (int(v) for v in args.shape.split(","))
    dev = torch.device(args.device)
    g = torch.Generator(device="cpu").manual_seed(0)
    u = torch.randn(N, L, E, generator=g).to(dev)
    delta = torch.nn.functional.softplus(torch.randn(N, L, E, generator=g) - 2.0).to(dev)
    A = (-torch.arange(1, S + 1, dtype=torch.float32).repeat(E, 1)).to(dev)
    B = torch.randn(N, L, S, generator=g).to(dev)
    C = torch.randn(N, L, S, generator=g).to(dev)
    D = torch.ones(E).to(dev)
    cuda = dev.type == "cuda"

    def timer(fn):
        if cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            return s.elapsed_time(e)
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3

    ref = None
    for spec in args.impls.split(","):
        name, _, ch = spec.partition(":")
        if name == "twin":
            fn = lambda: twin.selective_scan(u, delta, A, B, C, D)          # noqa: E731
        else:
            fn = (lambda name=name, ch=ch: selective_scan(u, delta, A, B, C, D, impl=name,  # noqa: E731
                                                          chunk=int(ch) if ch else None))
            if name == "oddeven" and ch:       # "oddeven:R": functional recursion of radix R
                fn = (lambda r=int(ch): _radix_call(r, u, delta, A, B, C, D))    # noqa: E731
        variants = [("eager", fn)]
        if args.compile:
            variants.append(("compiled", torch.compile(fn)))
        for mode, f in variants:
            rec = {"impl": spec, "mode": mode, "shape": [N, L, E, S], "device": str(dev),
                   "path": "functional" if (args.functional or mode == "compiled") else "in place"}
            try:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    y = f()
                    if cuda:
                        torch.cuda.synchronize()
                    rec["first_call_s"] = round(time.perf_counter() - t0, 2)
                    if ref is None:
                        ref = y
                    rec["max_rel_diff_vs_first"] = float((y - ref).abs().max() / ref.abs().max())
                    del y
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                    ts = sorted(timer(f) for _ in range(args.repeats))
                rec["median_ms"] = round(ts[len(ts) // 2], 3)
                rec["min_ms"] = round(ts[0], 3)
                if cuda:
                    rec["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
            except Exception as e:  # noqa: BLE001
                rec["error"] = f"{type(e).__name__}: {e}"[:500]
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    _bench()
