#!/usr/bin/env python3
"""Quick CPU self-tests of the PyTorch twin (tools/voxmamba_twin.py). Runs in well under a minute.

    /usr/bin/python3 tools/selftest_twin.py

Prints one line per test and exits non-zero if any fails.
"""

import itertools
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import voxmamba_twin as twin  # noqa: E402

torch.set_num_threads(1)
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)


def test_parameter_counts():
    for name, expected in (("small", 14_522_019), ("base", 60_381_027)):
        n = twin.count_parameters(twin.VoxMambaNet(twin.config_preset(name, 3)))
        check(f"parameter count {name} (3 classes)", n == expected, f"{n:,} (expected {expected:,})")


def _perturb(model, seed=1):
    """Give zero-initialised offset heads small random values so that the deformable path is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".offset.pw." in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_hdf5_round_trip():
    import h5py
    cfg = twin.config_preset("small", 3)
    full_cfg = dict(cfg, labels=["background", "a", "b"], patch_size=[16, 16, 16])
    model = twin.build_model(cfg, seed=0).eval()
    _perturb(model)
    x = torch.randn(1, 16, 16, 16, 1, generator=torch.Generator().manual_seed(2))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.h5")
        twin.save_hdf5(model, full_cfg, path)
        with h5py.File(path, "r") as f:
            attr_ok = isinstance(f.attrs["config"], str) and "encoder" in f and isinstance(f["encoder"], h5py.Group)
            dt = {f[n].dtype for n in twin.parameter_shapes(model)}
        loaded, lcfg = twin.load_hdf5(path)
        same_params = all(torch.equal(p, q) for (n, p), (m, q) in
                          zip(model.named_parameters(), loaded.named_parameters()) if n == m)
        same_names = [n for n, _ in model.named_parameters()] == [n for n, _ in loaded.named_parameters()]
        with torch.no_grad():
            y0 = model(x)
            y1 = loaded(x)
        check("save_hdf5 -> load_hdf5: config, names, float32 datasets, identical parameters",
              lcfg == full_cfg and attr_ok and dt == {np.dtype("float32")} and same_params and same_names,
              f"{len(twin.parameter_shapes(model))} datasets")
        check("save_hdf5 -> load_hdf5: identical outputs", torch.equal(y0, y1),
              f"max |diff| {float((y0 - y1).abs().max()):.3g}, max |y| {float(y0.abs().max()):.3g}")

        # config attribute as fixed-length bytes and as a 1-element array of bytes
        ok = True
        for variant in ("bytes", "array"):
            with h5py.File(path, "a") as f:
                s = json.dumps(full_cfg).encode()
                del f.attrs["config"]
                if variant == "bytes":
                    f.attrs["config"] = np.bytes_(s)
                else:
                    f.attrs["config"] = np.array([s])
            _, c = twin.load_hdf5(path)
            ok = ok and c == full_cfg
        check("load_hdf5 accepts config as fixed-length bytes / 1-element array", ok)

        # strictness: missing, extra, mis-shaped tensors are errors naming them
        msgs = []
        name = "encoder/stages/2/blocks/0/mamba/slice/A_log"
        for mode in ("missing", "extra", "shape"):
            p2 = os.path.join(d, f"{mode}.h5")
            twin.save_hdf5(model, full_cfg, p2)
            with h5py.File(p2, "a") as f:
                if mode == "missing":
                    del f[name]
                elif mode == "extra":
                    f.create_dataset("decoder/head/extra/weight", data=np.zeros(3, np.float32))
                else:
                    del f[name]
                    f.create_dataset(name, data=np.zeros((3, 4), np.float32))
            try:
                twin.load_hdf5(p2)
                msgs.append(None)
            except ValueError as e:
                msgs.append(str(e))
        ok = (msgs[0] is not None and name in msgs[0] and "missing" in msgs[0]
              and msgs[1] is not None and "decoder/head/extra/weight" in msgs[1]
              and msgs[2] is not None and name in msgs[2] and "shape" in msgs[2])
        check("load_hdf5 rejects missing / extra / mis-shaped tensors by name", ok,
              "; ".join(m.split(": ", 1)[-1] if m else "NO ERROR" for m in msgs))


def test_scan_direct():
    g = torch.Generator().manual_seed(3)
    N, L, E, S = 2, 37, 5, 4
    u = torch.randn(N, L, E, generator=g)
    delta = F.softplus(torch.randn(N, L, E, generator=g))
    A = -torch.exp(torch.randn(E, S, generator=g) * 0.5)
    B = torch.randn(N, L, S, generator=g)
    C = torch.randn(N, L, S, generator=g)
    D = torch.randn(E, generator=g)
    ref = twin.selective_scan_reference(u, delta, A, B, C, D)                  # float64 inside, fp32 out
    ref64 = twin.selective_scan_reference(u.double(), delta.double(), A.double(), B.double(), C.double(),
                                          D.double())
    with torch.no_grad():
        par = twin.selective_scan(u, delta, A, B, C, D)
        par_chunked = twin.selective_scan(u, delta, A, B, C, D, max_elements=N * L * S * 2)  # chunks over E
    par64 = twin.selective_scan(u.double(), delta.double(), A.double(), B.double(), C.double(), D.double(),
                                dtype=torch.float64)
    # functional (autograd) path
    ug = u.clone().requires_grad_(True)
    par_grad = twin.selective_scan(ug, delta, A, B, C, D)
    par_grad.sum().backward()
    scale = float(ref.abs().max())
    e32 = float((par - ref).abs().max()) / scale
    e64 = float((par64 - ref64).abs().max()) / scale
    ec = float((par_chunked - par).abs().max())
    eg = float((par_grad.detach() - par).abs().max())
    check("parallel scan == sequential reference (direct)",
          e32 < 1e-5 and e64 < 1e-12 and ec < 1e-6 and eg < 1e-6 and ug.grad is not None,
          f"rel err fp32 {e32:.2e}, fp64 {e64:.2e}; E-chunked vs whole {ec:.1e}; autograd path {eg:.1e}")


def test_fair_scan():
    """tools/fair_scan.py (the fair baseline's scans) against the float64 sequential reference: every
    formulation, in place and functional, L not a multiple of the chunk, E-chunking, strong decay."""
    import fair_scan
    g = torch.Generator().manual_seed(11)
    errs = {}
    saved = fair_scan.FUNCTIONAL, fair_scan.FUNCTIONAL_RADIX
    try:
        # (N, L, E, S, chunk, delta scale): L = 1, odd, prime, not a multiple of the chunk, several levels
        for N, L, E, S, T, ds in ((2, 37, 5, 4, 8, 1.0), (1, 1, 3, 2, 4, 1.0), (1, 300, 6, 16, 64, 1.0),
                                  (1, 1000, 3, 16, 16, 3.0), (2, 129, 4, 16, 128, 0.1)):
            u = torch.randn(N, L, E, generator=g)
            delta = F.softplus(torch.randn(N, L, E, generator=g) * 2.0) * ds
            A = -torch.arange(1, S + 1, dtype=torch.float32).repeat(E, 1) * torch.exp(torch.randn(E, S, generator=g) * 0.2)
            B = torch.randn(N, L, S, generator=g)
            C = torch.randn(N, L, S, generator=g)
            D = torch.randn(E, generator=g)
            ref = twin.selective_scan_reference(u, delta, A, B, C, D, dtype=torch.float64)
            scale = float(ref.abs().max())
            for impl, functional, radix in [(i, f, 2) for i in fair_scan.IMPLS for f in (False, True)] + [
                    ("oddeven", True, 3), ("oddeven", True, 8)]:
                fair_scan.FUNCTIONAL = functional
                fair_scan.FUNCTIONAL_RADIX = radix
                with torch.no_grad():
                    y = fair_scan.selective_scan(u, delta, A, B, C, D, impl=impl, chunk=T,
                                                 max_elements=N * L * S * 2)   # E chunks of 2
                key = f"{impl}{'-functional' if functional else ''}{f'-radix{radix}' if radix > 2 else ''}"
                errs[key] = max(errs.get(key, 0.0), float((y.double() - ref.double()).abs().max()) / scale)
                fair_scan.FUNCTIONAL_RADIX = 2
            fair_scan.FUNCTIONAL = "auto"
            ug = u.clone().requires_grad_(True)                 # autograd: the functional recursion
            y = fair_scan.selective_scan(ug, delta, A, B, C, D)
            y.sum().backward()
            errs["autograd"] = max(errs.get("autograd", 0.0), float((y.detach().double() - ref).abs().max()) / scale)
            if ug.grad is None or not bool(torch.isfinite(ug.grad).all()):
                errs["autograd"] = float("inf")
    finally:
        fair_scan.FUNCTIONAL, fair_scan.FUNCTIONAL_RADIX = saved
    check("fair scans (oddeven, chunked, doubling; in place, functional, radix 3/8) == float64 sequential reference",
          all(e < 1e-5 for e in errs.values()), ", ".join(f"{k} {e:.1e}" for k, e in errs.items()))


def test_forward_fair_scan_and_layout():
    """The whole twin (small, 32^3, perturbed offsets) with the fair scans and with channels_last_3d
    matches the default twin (doubling scan, NCDHW)."""
    torch.manual_seed(12)
    model = twin.VoxMambaNet(twin.config_preset("small", 3)).eval()
    _perturb(model)
    x = torch.randn(1, 32, 32, 32, 1, generator=torch.Generator().manual_seed(13))
    saved = (twin.SCAN_IMPL, twin.SCAN_CHUNK)
    errs = {}
    try:
        with torch.no_grad():
            y0 = model(x)
            scale = float(y0.abs().max())
            for impl, chunk in (("oddeven", 64), ("chunked", 100)):      # 100: L = 4096 is no multiple
                twin.SCAN_IMPL, twin.SCAN_CHUNK = impl, chunk
                errs[f"{impl}"] = float((model(x) - y0).abs().max()) / scale
            twin.SCAN_IMPL = "doubling"
            twin.set_channels_last_3d(model, True)
            y1 = model(x)
            errs["channels_last_3d"] = float((y1 - y0).abs().max()) / scale
            twin.set_channels_last_3d(model, False)
            errs["back to ncdhw"] = float((model(x) - y0).abs().max()) / scale
    finally:
        twin.SCAN_IMPL, twin.SCAN_CHUNK = saved
        twin.set_channels_last_3d(model, False)
    check("forward small 32^3: fair scans and channels_last_3d == default twin", all(e < 1e-5 for e in errs.values()),
          ", ".join(f"{k} {e:.1e}" for k, e in errs.items()))


@torch.no_grad()
def _mamba_block_reference(m, x):
    """MambaToM from network.md with explicit index permutations, an explicit causal conv loop and the
    sequential scan (float64)."""
    x = x.double()
    N, C, D, H, W = x.shape
    L = D * H * W
    E = m.inner
    tok = torch.empty(N, L, C, dtype=torch.float64)
    for d, h, w in itertools.product(range(D), range(H), range(W)):
        tok[:, (d * H + h) * W + w] = x[:, :, d, h, w]
    tok = F.layer_norm(tok, (C,), m.norm.weight.double(), m.norm.bias.double(), 1e-5)
    xz = tok @ m.in_proj.weight.double().t()
    xi, z = xz[..., :E], xz[..., E:]
    orders = {"fwd": list(range(L)), "bwd": list(range(L - 1, -1, -1)), "slice": [0] * L}
    for h, w, d in itertools.product(range(H), range(W), range(D)):
        orders["slice"][(h * W + w) * D + d] = (d * H + h) * W + w
    y = torch.zeros(N, L, E, dtype=torch.float64)
    for o, perm in orders.items():
        s = getattr(m, o)
        u = xi[:, perm]                                           # u[:, pos] = xi[:, token at pos]
        k = s.d_conv
        wc, bc = s.conv1d.weight.double()[:, 0], s.conv1d.bias.double()
        cu = torch.zeros_like(u) + bc
        for t in range(L):
            for j in range(k):
                src = t - (k - 1) + j
                if src >= 0:
                    cu[:, t] += wc[:, j] * u[:, src]
        cu = F.silu(cu)
        dbl = cu @ s.x_proj.weight.double().t()
        R, S = s.dt_rank, s.d_state
        dt_in, Bm, Cm = dbl[..., :R], dbl[..., R:R + S], dbl[..., R + S:]
        delta = F.softplus(dt_in @ s.dt_proj.weight.double().t() + s.dt_proj.bias.double())
        yo = twin.selective_scan_reference(cu, delta, -torch.exp(s.A_log.double()), Bm, Cm, s.D.double())
        back = torch.zeros_like(yo)
        back[:, perm] = yo
        y = y + back
    y = y * F.silu(z)
    out = y @ m.out_proj.weight.double().t()
    res = torch.empty(N, C, D, H, W, dtype=torch.float64)
    for d, h, w in itertools.product(range(D), range(H), range(W)):
        res[:, :, d, h, w] = out[:, (d * H + h) * W + w]
    return res


def test_scan_block():
    torch.manual_seed(4)
    m = twin.MambaToM(channels=8, d_state=4, d_conv=4, expand=2)
    with torch.no_grad():                       # make the three orientations differ
        for o in twin.ORIENTATIONS:
            s = getattr(m, o)
            s.A_log.add_(torch.randn_like(s.A_log) * 0.3)
            s.D.add_(torch.randn_like(s.D) * 0.3)
    x = torch.randn(2, 8, 3, 4, 5)
    with torch.no_grad():
        y = m(x)
    ref = _mamba_block_reference(m, x)
    err = float((y.double() - ref).abs().max()) / float(ref.abs().max())
    # each orientation on its own must also match, to catch compensating order bugs
    per = []
    for o in twin.ORIENTATIONS:
        others = [p for p in twin.ORIENTATIONS if p != o]
        saved = {p: getattr(m, p).D.detach().clone() for p in others}
        # zeroing x_proj and D of the other orientations makes their contribution exactly zero
        saved_x = {p: getattr(m, p).x_proj.weight.detach().clone() for p in others}
        with torch.no_grad():
            for p in others:
                getattr(m, p).D.zero_()
                getattr(m, p).x_proj.weight.zero_()
            yo = m(x)
        ro = _mamba_block_reference(m, x)
        per.append(float((yo.double() - ro).abs().max()) / float(ro.abs().max()))
        with torch.no_grad():
            for p in others:
                getattr(m, p).D.copy_(saved[p])
                getattr(m, p).x_proj.weight.copy_(saved_x[p])
    ok = err < 1e-5 and all(e < 1e-5 for e in per)
    check("Mamba block (fwd+bwd+slice, causal conv, x_proj split) == sequential reference", ok,
          f"rel err all {err:.2e}; " + ", ".join(f"{o} only {e:.2e}" for o, e in zip(twin.ORIENTATIONS, per)))


def _dw_plain(u, w, b, dil):
    K = w.shape[-1]
    return F.conv3d(u, w, b, padding=dil * (K - 1) // 2, dilation=dil, groups=u.shape[1])


def test_deform_zero_offsets():
    g = torch.Generator().manual_seed(5)
    errs = []
    for shape, K, dil in (((1, 3, 6, 5, 7), 5, 1), ((2, 2, 9, 4, 6), 7, 3), ((1, 2, 1, 4, 5), 5, 1),
                          ((1, 2, 3, 1, 1), 7, 3)):
        u = torch.randn(*shape, generator=g)
        w = torch.randn(shape[1], 1, K, K, K, generator=g)
        b = torch.randn(shape[1], generator=g)
        off = torch.zeros(shape[0], 3 * K ** 3, *shape[2:])
        y = twin.deform_dwconv3d(u, off, w, b, dil)
        yc = twin.deform_dwconv3d(u, off, w, b, dil, max_elements=u.numel() * 7)   # chunked over taps
        r = _dw_plain(u, w, b, dil)
        errs.append(max(float((y - r).abs().max()), float((yc - r).abs().max())) / float(r.abs().max()))
    # also through the module: an untrained deformable DWConv equals the plain one
    torch.manual_seed(6)
    m = twin.DWConv(3, 7, 3, deformable=True)
    u = torch.randn(1, 3, 5, 6, 7)
    with torch.no_grad():
        em = float((m(u) - _dw_plain(u, m.weight, m.bias, 3)).abs().max())
    ok = all(e < 1e-5 for e in errs) and em < 1e-4
    check("deformable conv, zero offsets == depthwise F.conv3d (incl. size-1 axes, tap chunking)", ok,
          "rel errs " + ", ".join(f"{e:.1e}" for e in errs) + f"; untrained module {em:.1e}")


def test_deform_integer_shift():
    g = torch.Generator().manual_seed(7)
    shift = (1, 0, -1)                                 # (d, h, w) voxels, for every tap
    errs = []
    for shape, K, dil in (((1, 3, 6, 5, 7), 5, 1), ((1, 2, 8, 5, 6), 7, 3)):
        N, C, D, H, W = shape
        u = torch.randn(*shape, generator=g)
        w = torch.randn(C, 1, K, K, K, generator=g)
        b = torch.randn(C, generator=g)
        K3 = K ** 3
        off = torch.tensor(shift, dtype=torch.float32).repeat(K3).view(1, 3 * K3, 1, 1, 1)
        off = off.expand(N, 3 * K3, D, H, W).contiguous()    # channel 3*k + a = shift[a]
        y = twin.deform_dwconv3d(u, off, w, b, dil)
        # reference: plain conv of the input shifted by `shift` with zero fill, on a padded canvas so that
        # samples outside the original volume read zero exactly as in the deformable conv
        M = dil * (K - 1) // 2 + 1
        U = F.pad(u, (M, M, M, M, M, M))
        Us = torch.roll(U, shifts=tuple(-s for s in shift), dims=(2, 3, 4))   # Us[q] = U[q + shift]
        r = _dw_plain(Us, w, b, dil)[:, :, M:M + D, M:M + H, M:M + W]
        errs.append(float((y - r).abs().max()) / float(r.abs().max()))
    # and the axis meaning of the layout: a shift of +1 along d of a single tap of a delta kernel
    K = 5
    u = torch.randn(1, 1, 6, 6, 6, generator=g)
    w = torch.zeros(1, 1, K, K, K)
    w[0, 0, 2, 2, 2] = 1.0                             # centre tap, k = 62
    k = (2 * K + 2) * K + 2
    ok_axes = True
    for a in range(3):
        off = torch.zeros(1, 3 * K ** 3, 6, 6, 6)
        off[:, 3 * k + a] = 1.0
        y = twin.deform_dwconv3d(u, off, w, None, 1)
        sl = [slice(None)] * 5
        sl[2 + a] = slice(0, 5)
        sr = [slice(None)] * 5
        sr[2 + a] = slice(1, 6)
        ok_axes = ok_axes and float((y[tuple(sl)] - u[tuple(sr)]).abs().max()) < 1e-5
    ok = all(e < 1e-5 for e in errs) and ok_axes
    check("deformable conv, offsets (1,0,-1) on all taps == depthwise conv of the shifted input", ok,
          "rel errs " + ", ".join(f"{e:.1e}" for e in errs) + f"; channel 3k+a moves axis a (d,h,w): {ok_axes}")


def test_deform_fractional():
    """Fractional offsets against a direct evaluation of network.md's trilinear formula."""
    g = torch.Generator().manual_seed(8)
    N, C, D, H, W, K, dil = 1, 2, 3, 1, 4, 3, 2
    u = torch.randn(N, C, D, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(C, 1, K, K, K, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64)
    K3 = K ** 3
    off = (torch.rand(N, 3 * K3, D, H, W, generator=g, dtype=torch.float64) - 0.5) * 3.0
    y = twin.deform_dwconv3d(u, off, w, b, dil)
    size = (D, H, W)

    def read(c, q):
        if all(0 <= q[a] < size[a] for a in range(3)):
            return float(u[0, c, q[0], q[1], q[2]])
        return 0.0

    ref = torch.zeros_like(y)
    for c, d, h, x in itertools.product(range(C), range(D), range(H), range(W)):
        acc = float(b[c])
        for k, (kd, kh, kw) in enumerate(itertools.product(range(K), repeat=3)):
            p = [d + dil * (kd - 1) + float(off[0, 3 * k + 0, d, h, x]),
                 h + dil * (kh - 1) + float(off[0, 3 * k + 1, d, h, x]),
                 x + dil * (kw - 1) + float(off[0, 3 * k + 2, d, h, x])]
            f0 = [math.floor(v) for v in p]
            fr = [v - f for v, f in zip(p, f0)]
            s = 0.0
            for corner in itertools.product((0, 1), repeat=3):
                wt = 1.0
                for a in range(3):
                    wt *= fr[a] if corner[a] else 1.0 - fr[a]
                s += wt * read(c, [f0[a] + corner[a] for a in range(3)])
            acc += float(w[c, 0, kd, kh, kw]) * s
        ref[0, c, d, h, x] = acc
    err = float((y - ref).abs().max())
    check("deformable conv, fractional offsets (size-1 axis) == direct trilinear formula", err < 1e-10,
          f"max abs err {err:.1e} (float64)")


def test_forward_small():
    torch.manual_seed(9)
    model = twin.VoxMambaNet(twin.config_preset("small", 3)).eval()
    _perturb(model)
    x = torch.randn(1, 16, 16, 16, 1)
    t = time.time()
    with torch.no_grad():
        y = model(x)
    dt = time.time() - t
    check("forward small 1x16x16x16x1", tuple(y.shape) == (1, 16, 16, 16, 3) and bool(torch.isfinite(y).all()),
          f"shape {tuple(y.shape)}, std {float(y.std()):.3g}, {dt:.2f} s")


def _run_tool(main, args):
    """Run a tool's main(args): (its JSON lines, its exit status, 0 if it did not exit, its last error line)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    status = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(args)
    except SystemExit as e:
        status = e.code
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return lines, status, (err.getvalue().strip().splitlines() or ["no error"])[-1]


def test_precision_emulation():
    """tools/precision_emulation.py: rounding to fp16 (10-bit mantissa) moves the logits less than
    bf16 (7-bit), neither leaves them untouched; keeping everything in fp32 leaves them exactly,
    keeping the decoder's outputs moves them less; an unknown type or a bad pattern is refused."""
    import precision_emulation
    cfg = twin.config_preset("small", 3)
    model = twin.build_model(cfg, seed=0).eval()
    _perturb(model)
    with tempfile.TemporaryDirectory() as d:
        weights, inp = os.path.join(d, "m.h5"), os.path.join(d, "x.npy")
        twin.save_hdf5(model, dict(cfg, labels=["background", "a", "b"], patch_size=[16, 16, 16]), weights)
        np.save(inp, np.random.RandomState(0).standard_normal((1, 16, 16, 16, 1)).astype(np.float32))

        def emulate(*extra):
            """The tool's JSON for this model and input, with `extra` arguments."""
            return _run_tool(precision_emulation.main, ["--weights", weights, "--input", inp, *extra])[0][0]

        def refusal(*extra):
            """(refused with exit status 2, the error's last line) for `extra` arguments."""
            _, status, message = _run_tool(precision_emulation.main, ["--weights", weights, "--input", inp, *extra])
            return status == 2, message

        r = emulate()
        bf16, fp16 = r["bf16"]["mean_abs_error"], r["fp16"]["mean_abs_error"]
        check("precision emulation: fp16 moves the logits less than bf16, both move them",
              0 < fp16 < bf16 / 2 and r["bf16"]["argmax_agreement"] > 0.9, f"mean abs error bf16 {bf16:.2e}, fp16 {fp16:.2e}")
        kept = emulate("--keep-fp32", ".", "--fp32-weights")["bf16"]  # nothing rounded: exactly the float32 logits
        check("precision emulation: keeping every output and weight in fp32 leaves the logits as they are",
              kept["max_abs_error"] == 0 and kept["argmax_agreement"] == 1, json.dumps(kept))
        partly = emulate("--types", "bf16", "--keep-fp32", "decoder")["bf16"]["mean_abs_error"]
        check("precision emulation: keeping the decoder's outputs in fp32 moves the logits less, but still",
              0 < partly < bf16, f"mean abs error {partly:.2e} vs {bf16:.2e} all rounded")
        refused, message = refusal("--types", "fp8")
        check("precision emulation: an unknown type is refused", refused and "unknown type(s) fp8" in message, message)
        refused, message = refusal("--keep-fp32", "(decoder")
        check("precision emulation: a --keep-fp32 that is not a regular expression is refused",
              refused and "not a regular expression" in message, message)


def test_precision_margins():
    """tools/precision_margins.py: a voxel's margin is its top logit less the runner-up; the
    buckets hold every voxel once; a rounded logit moves by at most the maximum error, so the
    argmax can only change where the margin is at most twice that; float16 overflow is counted;
    mismatched labels are refused."""
    import precision_margins
    m = precision_margins.margins(torch.tensor([[3.0, 1.0, 2.5], [0.0, -1.0, 0.0]]))
    check("precision margins: top logit less the runner-up, ties give zero", m.tolist() == [0.5, 0.0], str(m.tolist()))
    cfg = twin.config_preset("small", 3)
    model = twin.build_model(cfg, seed=0).eval()
    _perturb(model)
    with tempfile.TemporaryDirectory() as d:
        weights, inp, lab = (os.path.join(d, n) for n in ("m.h5", "x.npy", "y.npy"))
        twin.save_hdf5(model, dict(cfg, labels=["background", "a", "b"], patch_size=[16, 16, 16]), weights)
        np.save(inp, np.random.RandomState(0).standard_normal((1, 16, 16, 16, 1)).astype(np.float32))
        np.save(lab, np.random.RandomState(1).randint(0, 3, (1, 16, 16, 16)))
        lines, status, _ = _run_tool(precision_margins.main, ["--weights", weights, "--input", inp, "--labels", lab])
        r = lines[0]
        shares = sum(b["share"] for b in r["bf16"]["buckets"])
        check("precision margins: the buckets hold every voxel once", status == 0 and abs(shares - 1) < 1e-9,
              f"shares sum to {shares}")
        with torch.no_grad():
            logits_max = float(model(torch.from_numpy(np.load(inp))).abs().max())
        largest = r["largest_float32_output"]
        check("precision margins: the largest module output is at least the largest logit (the head's own)",
              largest["module"] and largest["max_abs"] >= logits_max > 0, f"{largest} vs logits {logits_max:.3g}")
        for name in ("bf16", "fp16"):
            e = r[name]
            wide = [b for b in e["buckets"] if b["margin"][0] > 2 * e["max_abs_error"] and b["agreement"] is not None]
            check(f"precision margins: {name} agrees wherever the margin exceeds twice its largest error",
                  wide and all(b["agreement"] == 1.0 for b in wide) and "accuracy" in e,
                  f"{len(wide)} such buckets, max abs error {e['max_abs_error']:.2e}")
        # A conv whose outputs leave float16's range (as a trained Mamba block's did): the fp16
        # logits are then NaN, counted, with no error figures; bf16 has float32's range.
        with torch.no_grad():
            model.decoder.head.res.conv1.weight.mul_(1e6)
        twin.save_hdf5(model, dict(cfg, labels=["background", "a", "b"], patch_size=[16, 16, 16]), weights)
        lines, status, _ = _run_tool(precision_margins.main, ["--weights", weights, "--input", inp])
        r = lines[0]
        check("precision margins: float16 past its range gives counted non-finite logits, bfloat16 does not",
              status == 0 and r["fp16"]["non_finite_logits"] > 0 and r["fp16"]["mean_abs_error"] is None
              and r["bf16"]["non_finite_logits"] == 0 and r["bf16"]["mean_abs_error"] is not None
              and r["largest_float32_output"]["max_abs"] > 65504,
              f"fp16 {r['fp16']['non_finite_logits']} non-finite, largest {r['largest_float32_output']}")
        np.save(lab, np.zeros((1, 8, 16, 16), dtype=np.int64))
        _, status, message = _run_tool(precision_margins.main, ["--weights", weights, "--input", inp, "--labels", lab])
        check("precision margins: labels of another shape are refused", status == 2 and "shape" in message, message)


def test_train_twin_synthetic():
    """tools/train_twin_synthetic.py: the synthetic task's classes differ in brightness as labelled;
    a two-step run writes weights the twin reads back, and a held-out case; an edge that is not a
    multiple of 16 is refused."""
    import train_twin_synthetic as tts
    image, labels = tts.synthetic_case(np.random.default_rng(3), 32)
    means = [float(image[labels == c].mean()) for c in range(3)]
    check("synthetic task: bright balls above the background, dark ones below",
          means[1] > means[0] + 0.5 > means[2] + 1.0, f"class means {[round(v, 2) for v in means]}")
    with tempfile.TemporaryDirectory() as d:
        lines, status, _ = _run_tool(tts.main, ["--out", d, "--steps", "2", "--size", "16", "--val-size", "16",
                                                "--log-every", "1"])
        model, _ = twin.load_hdf5(os.path.join(d, "trained.h5"))
        x, y = np.load(os.path.join(d, "val_input.npy")), np.load(os.path.join(d, "val_labels.npy"))
        check("train twin: two steps logged, weights and a held-out case written",
              status == 0 and [l.get("step") for l in lines[:2]] == [1, 2] and model.cfg["num_classes"] == 3
              and x.shape == (1, 16, 16, 16, 1) and y.shape == (1, 16, 16, 16), f"{len(lines)} lines, status {status}")
        _, status, message = _run_tool(tts.main, ["--out", d, "--size", "20"])
        check("train twin: an edge that is not a multiple of 16 is refused", status == 2 and "multiple of 16" in message,
              message)


def main():
    t0 = time.time()
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    for test in (test_parameter_counts, test_scan_direct, test_fair_scan, test_scan_block, test_deform_zero_offsets,
                 test_deform_integer_shift, test_deform_fractional, test_forward_small,
                 test_forward_fair_scan_and_layout, test_hdf5_round_trip, test_precision_emulation,
                 test_precision_margins, test_train_twin_synthetic):
        try:
            test()
        except Exception as e:  # a crash is a failure of that test
            import traceback
            traceback.print_exc()
            check(test.__name__, False, f"{type(e).__name__}: {e}")
    n_fail = RESULTS.count(False)
    print(f"{len(RESULTS) - n_fail}/{len(RESULTS)} passed in {time.time() - t0:.1f} s")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
