"""PyTorch twin of VoxMambaNet, exactly as docs/network.md specifies it.

The twin is the oracle the C++ engine is checked against (tools/parity_check.py) and the PyTorch baseline
for speed comparisons. It reads and writes the same HDF5 weights file as the engine.

Conventions the C++ engine must match (network.md leaves these implicit or they are easy to get wrong):

* Tensors at the API are channels-last: forward(x) takes x[N, D, H, W, C_in] float32 and returns
  logits[N, D, H, W, num_classes]. Internally the twin uses NCDHW.
* Deformable depthwise conv, offsets channel layout: the offset head pw_off(dw3_off(u)) outputs 3*K^3
  channels; channel index = 3*k + a, where k is the tap index in (d, h, w) raster order
  (k = (kd*K + kh)*K + kw, the same order as the flattened weight w[c, 0, kd, kh, kw]) and a the axis
  (0 = d, 1 = h, 2 = w). Offsets are in voxel units and are shared by all channels.
  Tap k samples u at  p + dilation * (kd - (K-1)/2, kh - (K-1)/2, kw - (K-1)/2) + offset[p, k].
  Sampling is trilinear with zero padding (each of the 8 neighbours outside the volume reads 0, also on
  axes of size 1). The twin realises it with ONE grid_sample call over all K^3 taps (chunked over taps
  only when the sample tensor would exceed DEFORM_MAX_ELEMENTS), align_corners=False and the normalized
  coordinate g = (2p + 1)/S - 1 per axis; grid_sample's last grid dim is ordered (x, y, z) = (w, h, d).
  The conv bias is added after the weighted sum. The offset head runs on the conv's own input: for dw5
  that is LKA's input u, for dw7 it is dw5's output.
* Mamba: token order t = (d*H + h)*W + w; bwd is the reversed sequence; slice visits position
  (h*W + w)*D + d. in_proj output is [xi (E), z (E)]; x_proj output is [dt_in (R), B (S), C (S)],
  R = ceil(C_model / 16). The causal depthwise conv1d pads d_conv - 1 zeros before the first token of
  each orientation (weight [E, 1, d_conv], tap j multiplies token t - (d_conv - 1) + j). Δ = softplus
  (PyTorch's softplus, which returns x for x > 20). A = -exp(A_log). The scan is computed in float32
  (autocast disabled), parallel over the sequence (log-depth doubling).
* Norms: LayerNorm over channels eps 1e-5; InstanceNorm eps 1e-5 with affine weight/bias, biased
  variance over D, H, W per (sample, channel); defined (= bias) also on 1x1x1 volumes. LeakyReLU 0.01,
  exact (erf) GELU, SiLU.
* Weights file: HDF5, one float32 dataset per parameter at the '/'-separated path that equals the
  PyTorch parameter name with '.' replaced by '/' (nested groups), PyTorch shapes. Root attribute
  `config` = JSON text. save_hdf5 writes it as a scalar variable-length UTF-8 string attribute
  (H5T_STRING, H5T_VARIABLE, H5T_CSET_UTF8, scalar dataspace); load_hdf5 also accepts fixed-length /
  ASCII strings, bytes, and 1-element arrays of them.
"""

import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:                                   # tools/fair_scan.py, the fast scans of the fair baseline
    import fair_scan as _fair_scan
except ImportError:                    # imported from elsewhere without tools/ on sys.path
    import os as _os
    import sys as _sys
    _sys.path.append(_os.path.dirname(_os.path.abspath(__file__)))
    import fair_scan as _fair_scan

__all__ = [
    "config_preset", "build_model", "VoxMambaNet", "load_hdf5", "save_hdf5", "count_parameters",
    "selective_scan", "selective_scan_reference", "deform_dwconv3d", "parameter_shapes",
    "scan_dispatch", "set_channels_last_3d", "SCAN_IMPLS",
]

# Upper bound on the number of elements of the sampled tensor [N, C, taps, D*H*W] one grid_sample call
# produces; beyond it the taps are split into chunks (the result is the same up to summation order).
DEFORM_MAX_ELEMENTS = (1 << 31) - 1
# Upper bound on the elements of one [N, L, E_chunk, S] scan state tensor; the scan is chunked over the
# channels E (never over tokens) beyond it.
SCAN_MAX_ELEMENTS = 1 << 28
# Compute dtype of the selective scan. float32 by default; set to torch.float64 for a CPU reference.
SCAN_DTYPE = torch.float32
# Scan used by the Mamba blocks: "doubling" (this file's selective_scan, the accuracy oracle, default)
# or one of tools/fair_scan.py's fast formulations, "oddeven" (work-efficient log-depth) or "chunked"
# (doubling inside chunks of SCAN_CHUNK tokens, then chunk carries). tools/bench_twin.py sets it for
# the fair speed baseline; the parity checks keep the default.
SCAN_IMPL = "doubling"
SCAN_IMPLS = ("doubling", "oddeven", "chunked")
SCAN_CHUNK = 64

NETWORK_KEYS = ("in_channels", "num_classes", "dims", "depths", "hidden", "d_state", "d_conv",
                "expand", "deformable")
ORIENTATIONS = ("fwd", "bwd", "slice")


# --------------------------------------------------------------------------------------------- config

def config_preset(name, num_classes):
    """Network configuration of the 'small' or 'base' preset (network.md, Configuration)."""
    if name == "small":
        cfg = dict(in_channels=1, num_classes=num_classes, dims=[24, 48, 96, 192], depths=[1, 1, 1, 1],
                   hidden=384, d_state=16, d_conv=4, expand=2, deformable=[False, False, True, True])
    elif name == "base":
        cfg = dict(in_channels=1, num_classes=num_classes, dims=[48, 96, 192, 384], depths=[2, 2, 2, 2],
                   hidden=768, d_state=16, d_conv=4, expand=2, deformable=[True, True, True, True])
    else:
        raise ValueError(f"unknown preset {name!r} (expected 'small' or 'base')")
    return cfg


def _network_config(config):
    missing = [k for k in NETWORK_KEYS if k not in config]
    if missing:
        raise ValueError(f"config lacks network keys: {', '.join(missing)}")
    c = {k: config[k] for k in NETWORK_KEYS}
    c["dims"] = [int(v) for v in c["dims"]]
    c["depths"] = [int(v) for v in c["depths"]]
    c["deformable"] = [bool(v) for v in c["deformable"]]
    for k in ("in_channels", "num_classes", "hidden", "d_state", "d_conv", "expand"):
        c[k] = int(c[k])
    if not (len(c["dims"]) == len(c["depths"]) == len(c["deformable"]) == 4):
        raise ValueError("dims, depths and deformable must have 4 entries (stages 0..3)")
    return c


# --------------------------------------------------------------------------------------------- layers

def _pw(cin, cout, bias=True):
    return nn.Conv3d(cin, cout, kernel_size=1, bias=bias)


class InstanceNorm(nn.InstanceNorm3d):
    """InstanceNorm3d(affine=True, eps=1e-5, track_running_stats=False).

    Evaluated as group_norm with one group per channel (identical maths), which, unlike
    F.instance_norm, also accepts 1x1x1 volumes (stage 3 of a 16-voxel input)."""

    def __init__(self, channels):
        super().__init__(channels, eps=1e-5, affine=True, track_running_stats=False)

    def forward(self, x):
        if x.shape[2] * x.shape[3] * x.shape[4] == 1:
            # one voxel: x - mean = 0, so the result is the bias (group_norm refuses this case at N = 1)
            return self.bias.view(1, -1, 1, 1, 1).to(x.dtype).expand_as(x).contiguous()
        return F.group_norm(x, x.shape[1], self.weight, self.bias, self.eps)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel dim of an NCDHW tensor."""

    def __init__(self, channels):
        super().__init__(channels, eps=1e-5)

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 4, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 4, 1, 2, 3)


def deform_dwconv3d(u, offsets, weight, bias, dilation=1, max_elements=None):
    """Deformable depthwise 3D conv (network.md), NCDHW.

    u: [N, C, D, H, W]; offsets: [N, 3*K^3, D, H, W], channel 3*k + a (k tap in d,h,w raster order,
    a = 0:d 1:h 2:w), voxel units; weight: [C, 1, K, K, K]; bias: [C] or None.
    All taps go through one grid_sample call (chunked over taps only above max_elements)."""
    if max_elements is None:
        max_elements = DEFORM_MAX_ELEMENTS
    N, C, D, H, W = u.shape
    K = weight.shape[-1]
    K3 = K * K * K
    if offsets.shape != (N, 3 * K3, D, H, W):
        raise ValueError(f"offsets shape {tuple(offsets.shape)} != {(N, 3 * K3, D, H, W)}")
    dev = u.device
    cdt = torch.float64 if u.dtype == torch.float64 else torch.float32
    half = (K - 1) / 2.0
    r = torch.arange(K, device=dev, dtype=cdt) - half
    td, th, tw = torch.meshgrid(r, r, r, indexing="ij")          # raster order over (kd, kh, kw)
    taps = torch.stack([td.reshape(-1), th.reshape(-1), tw.reshape(-1)], 1) * dilation  # [K3, 3]
    bd = torch.arange(D, device=dev, dtype=cdt).view(1, 1, D, 1, 1)
    bh = torch.arange(H, device=dev, dtype=cdt).view(1, 1, 1, H, 1)
    bw = torch.arange(W, device=dev, dtype=cdt).view(1, 1, 1, 1, W)
    off = offsets.reshape(N, K3, 3, D, H, W).to(cdt)
    wf = weight.reshape(C, K3)
    L = D * H * W
    per_tap = N * C * L
    kc = max(1, min(K3, max_elements // max(per_tap, 1)))
    y = None
    for k0 in range(0, K3, kc):
        k1 = min(K3, k0 + kc)
        n = k1 - k0
        t = taps[k0:k1]
        pd = off[:, k0:k1, 0] + (bd + t[:, 0].view(1, n, 1, 1, 1))
        ph = off[:, k0:k1, 1] + (bh + t[:, 1].view(1, n, 1, 1, 1))
        pw = off[:, k0:k1, 2] + (bw + t[:, 2].view(1, n, 1, 1, 1))
        gd = (2.0 * pd + 1.0) / D - 1.0
        gh = (2.0 * ph + 1.0) / H - 1.0
        gw = (2.0 * pw + 1.0) / W - 1.0
        del pd, ph, pw
        grid = torch.stack([gw, gh, gd], dim=-1).reshape(N, n * D, H, W, 3)
        del gd, gh, gw
        s = F.grid_sample(u, grid.to(u.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
        del grid
        s = s.reshape(N, C, n, L)
        part = torch.matmul(wf[:, k0:k1].reshape(1, C, 1, n).to(s.dtype), s)  # [N, C, 1, L]
        del s
        y = part if y is None else y + part
    y = y.reshape(N, C, D, H, W)
    if bias is not None:
        y = y + bias.view(1, C, 1, 1, 1).to(y.dtype)
    return y


class OffsetHead(nn.Module):
    """Δ = pw_off(dw3_off(u)): depthwise 3^3 conv (padding 1, bias) then pw C -> 3*K^3 (zero init)."""

    def __init__(self, channels, kernel):
        super().__init__()
        self.dw = nn.Conv3d(channels, channels, 3, padding=1, groups=channels, bias=True)
        self.pw = _pw(channels, 3 * kernel ** 3)
        nn.init.zeros_(self.pw.weight)
        nn.init.zeros_(self.pw.bias)

    def forward(self, u):
        return self.pw(self.dw(u))


class DWConv(nn.Module):
    """Depthwise K^3 conv with bias, dilation; deformable (with an offset head) when configured."""

    def __init__(self, channels, kernel, dilation, deformable):
        super().__init__()
        proto = nn.Conv3d(channels, channels, kernel, groups=channels, bias=True)  # default init
        self.weight = proto.weight
        self.bias = proto.bias
        self.kernel = kernel
        self.dilation = dilation
        self.padding = dilation * (kernel - 1) // 2
        self.deformable = deformable
        if deformable:
            self.offset = OffsetHead(channels, kernel)

    def forward(self, u):
        if self.deformable:
            return deform_dwconv3d(u, self.offset(u), self.weight, self.bias, self.dilation)
        return F.conv3d(u, self.weight, self.bias, padding=self.padding, dilation=self.dilation,
                        groups=u.shape[1])


class LKA(nn.Module):
    """LKA(u) = u * pw_attn(dw7d3(dw5(u)))."""

    def __init__(self, channels, deformable):
        super().__init__()
        self.dw5 = DWConv(channels, 5, 1, deformable)
        self.dw7 = DWConv(channels, 7, 3, deformable)
        self.pw = _pw(channels, channels)

    def forward(self, u):
        return u * self.pw(self.dw7(self.dw5(u)))


class DLKA(nn.Module):
    """DLKA(x) = proj2(LKA(GELU(proj1(LayerNorm(x)))))."""

    def __init__(self, channels, deformable):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.proj1 = _pw(channels, channels)
        self.lka = LKA(channels, deformable)
        self.proj2 = _pw(channels, channels)

    def forward(self, x):
        return self.proj2(self.lka(F.gelu(self.proj1(self.norm(x)))))


# --------------------------------------------------------------------------------------------- scan

def _doubling_scan(a, b):
    """Inclusive scan of h_t = a_t h_{t-1} + b_t over dim 1 (h_{-1} = 0), Hillis-Steele doubling:
    after the step with stride k, (a_t, b_t) is the composition of the up to 2k elements ending at t,
    composing (a1, b1) then (a2, b2) as (a2 a1, a2 b1 + b2). Returns h (aliases b when in-place)."""
    L = a.shape[1]
    inplace = not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
    k = 1
    while k < L:
        if inplace:
            b[:, k:].add_(a[:, k:] * b[:, :-k])
            if 2 * k < L:
                a[:, k:] = a[:, k:] * a[:, :-k]
        else:
            b = torch.cat([b[:, :k], a[:, k:] * b[:, :-k] + b[:, k:]], 1)
            if 2 * k < L:
                a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], 1)
        k *= 2
    return b


def selective_scan(u, delta, A, B, C, D, dtype=None, max_elements=None):
    """Parallel selective scan.

    u, delta: [N, L, E]; A: [E, S] (already negative); B, C: [N, L, S]; D: [E]. Returns y [N, L, E]:
    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t;  y_t = Σ_s C_t,s h_t,s + D u_t. Computed in `dtype`
    (default SCAN_DTYPE = float32), log-depth over L, chunked over E only for memory."""
    dtype = dtype or SCAN_DTYPE
    max_elements = max_elements or SCAN_MAX_ELEMENTS
    return _fair_scan.scan_with(_doubling_scan, u, delta, A, B, C, D, dtype, max_elements)


def scan_dispatch(u, delta, A, B, C, D):
    """The selective scan chosen by SCAN_IMPL (same contract as selective_scan)."""
    if SCAN_IMPL == "doubling":
        return selective_scan(u, delta, A, B, C, D)
    if SCAN_IMPL not in SCAN_IMPLS:
        raise ValueError(f"SCAN_IMPL {SCAN_IMPL!r} is not one of {', '.join(SCAN_IMPLS)}")
    return _fair_scan.selective_scan(u, delta, A, B, C, D, impl=SCAN_IMPL, chunk=SCAN_CHUNK, dtype=SCAN_DTYPE,
                                     max_elements=SCAN_MAX_ELEMENTS)


def selective_scan_reference(u, delta, A, B, C, D, dtype=torch.float64):
    """Naive sequential scan (a Python loop over tokens); for the self-test only."""
    out_dtype = u.dtype
    u, delta, A, B, C, D = (t.to(dtype) for t in (u, delta, A, B, C, D))
    N, L, E = u.shape
    S = A.shape[1]
    h = torch.zeros(N, E, S, dtype=dtype, device=u.device)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * u[:, t])
    return torch.stack(ys, 1).to(out_dtype)


# --------------------------------------------------------------------------------------------- mamba

def reorder(x, orientation, D, H, W):
    """x [N, L, E] in token order t = (d*H + h)*W + w -> sequence in the given orientation."""
    if orientation == "fwd":
        return x
    if orientation == "bwd":
        return x.flip(1)
    if orientation == "slice":
        N, L, E = x.shape
        return x.reshape(N, D, H, W, E).permute(0, 2, 3, 1, 4).reshape(N, L, E)
    raise ValueError(orientation)


def reorder_inverse(x, orientation, D, H, W):
    if orientation == "fwd":
        return x
    if orientation == "bwd":
        return x.flip(1)
    if orientation == "slice":
        N, L, E = x.shape
        return x.reshape(N, H, W, D, E).permute(0, 3, 1, 2, 4).reshape(N, L, E)
    raise ValueError(orientation)


class MambaScan(nn.Module):
    """One orientation: causal conv1d, x_proj, dt_proj, A_log, D."""

    def __init__(self, inner, d_state, d_conv, dt_rank, dt_min=1e-3, dt_max=1e-1, dt_init_floor=1e-4):
        super().__init__()
        self.inner, self.d_state, self.d_conv, self.dt_rank = inner, d_state, d_conv, dt_rank
        self.conv1d = nn.Conv1d(inner, inner, d_conv, groups=inner, bias=True)
        self.x_proj = nn.Linear(inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, inner, bias=True)
        std = dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        inv_dt = dt + torch.log(-torch.expm1(-dt))                 # softplus^-1
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_dt)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(inner, 1)
        self.A_log = nn.Parameter(torch.log(A))                     # [E, S], A_log[e, s] = log(s + 1)
        self.D = nn.Parameter(torch.ones(inner))

    def forward(self, u):
        # u: [N, L, E] in this orientation's order
        N, L, E = u.shape
        x = F.conv1d(u.transpose(1, 2), self.conv1d.weight, self.conv1d.bias,
                     padding=self.d_conv - 1, groups=E)[..., :L]   # left zero padding of d_conv - 1
        x = F.silu(x).transpose(1, 2)                              # [N, L, E]
        dbl = self.x_proj(x)
        dt_in, Bm, Cm = torch.split(dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt_in))
        A = -torch.exp(self.A_log.float())
        return scan_dispatch(x, delta, A, Bm, Cm, self.D)


class MambaToM(nn.Module):
    """LayerNorm then the Mamba block with three orientations (fwd, bwd, slice)."""

    def __init__(self, channels, d_state, d_conv, expand):
        super().__init__()
        inner = expand * channels
        dt_rank = math.ceil(channels / 16)
        self.inner = inner
        self.norm = nn.LayerNorm(channels, eps=1e-5)
        self.in_proj = nn.Linear(channels, 2 * inner, bias=False)
        self.fwd = MambaScan(inner, d_state, d_conv, dt_rank)
        self.bwd = MambaScan(inner, d_state, d_conv, dt_rank)
        self.slice = MambaScan(inner, d_state, d_conv, dt_rank)
        self.out_proj = nn.Linear(inner, channels, bias=False)

    def forward(self, x):
        # x: NCDHW -> tokens [N, L, C], t = (d*H + h)*W + w
        N, C, D, H, W = x.shape
        t = x.permute(0, 2, 3, 4, 1).reshape(N, D * H * W, C)
        xz = self.in_proj(self.norm(t))
        xi, z = xz[..., :self.inner], xz[..., self.inner:]
        y = None
        for o in ORIENTATIONS:
            yo = reorder_inverse(getattr(self, o)(reorder(xi, o, D, H, W)), o, D, H, W)
            y = yo if y is None else y + yo
        y = y * F.silu(z)
        out = self.out_proj(y)
        return out.reshape(N, D, H, W, C).permute(0, 4, 1, 2, 3)


# --------------------------------------------------------------------------------------------- encoder

class BlockPair(nn.Module):
    def __init__(self, channels, deformable, d_state, d_conv, expand):
        super().__init__()
        self.dlka = DLKA(channels, deformable)
        self.mamba = MambaToM(channels, d_state, d_conv, expand)

    def forward(self, x):
        x = x + self.dlka(x)
        x = x + self.mamba(x)
        return x


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm = InstanceNorm(cin)
        self.conv = nn.Conv3d(cin, cout, 2, stride=2, bias=True)

    def forward(self, x):
        return self.conv(self.norm(x))


class Mlp(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fc1 = _pw(channels, 2 * channels)
        self.fc2 = _pw(2 * channels, channels)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class StageOut(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = InstanceNorm(channels)
        self.mlp = Mlp(channels)

    def forward(self, x):
        return self.mlp(self.norm(x))


class Stage(nn.Module):
    def __init__(self, i, cfg):
        super().__init__()
        dims = cfg["dims"]
        c = dims[i]
        if i > 0:
            self.down = Down(dims[i - 1], c)
        self.blocks = nn.ModuleList([BlockPair(c, cfg["deformable"][i], cfg["d_state"], cfg["d_conv"],
                                               cfg["expand"]) for _ in range(cfg["depths"][i])])
        self.out = StageOut(c)

    def forward(self, x):
        if hasattr(self, "down"):
            x = self.down(x)
        for blk in self.blocks:
            x = blk(x)
        return x, self.out(x)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.stem = nn.Conv3d(cfg["in_channels"], cfg["dims"][0], 7, stride=2, padding=3, bias=True)
        self.stages = nn.ModuleList([Stage(i, cfg) for i in range(4)])

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for st in self.stages:
            x, f = st(x)
            feats.append(f)
        return feats


# --------------------------------------------------------------------------------------------- decoder

class Skip(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _pw(cin, cout, bias=False)
        self.norm = InstanceNorm(cout)

    def forward(self, x):
        return self.norm(self.conv(x))


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = InstanceNorm(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = InstanceNorm(cout)
        if cin != cout:
            self.skip = Skip(cin, cout)

    def forward(self, x):
        m = F.leaky_relu(self.norm1(self.conv1(x)), 0.01)
        m = self.norm2(self.conv2(m))
        s = self.skip(x) if hasattr(self, "skip") else x
        return F.leaky_relu(m + s, 0.01)


class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.res = ResBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.res(torch.cat([self.up(x), skip], 1))


class Head(nn.Module):
    def __init__(self, c0, num_classes):
        super().__init__()
        self.res = ResBlock(c0, c0)
        self.out = _pw(c0, num_classes, bias=True)

    def forward(self, x):
        return self.out(self.res(x))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c0, c1, c2, c3 = cfg["dims"]
        hid = cfg["hidden"]
        self.enc0 = ResBlock(cfg["in_channels"], c0)
        self.enc1 = ResBlock(c0, c1)
        self.enc2 = ResBlock(c1, c2)
        self.enc3 = ResBlock(c2, c3)
        self.bott = ResBlock(c3, hid)
        self.dec3 = UpBlock(hid, c3)
        self.dec2 = UpBlock(c3, c2)
        self.dec1 = UpBlock(c2, c1)
        self.dec0 = UpBlock(c1, c0)
        self.head = Head(c0, cfg["num_classes"])

    def forward(self, inp, feats):
        f0, f1, f2, f3 = feats
        enc0 = self.enc0(inp)
        enc1 = self.enc1(f0)
        enc2 = self.enc2(f1)
        enc3 = self.enc3(f2)
        bott = self.bott(f3)
        d = self.dec3(bott, enc3)
        d = self.dec2(d, enc2)
        d = self.dec1(d, enc1)
        d = self.dec0(d, enc0)
        return self.head(d)


class VoxMambaNet(nn.Module):
    # Internal layout of the NCDHW activations: False = contiguous NCDHW (default), True =
    # torch.channels_last_3d (NDHWC in memory; cuDNN for the depthwise convs). Set it with
    # set_channels_last_3d(model, True), which also converts the 5-D weights.
    channels_last_3d = False

    def __init__(self, config):
        super().__init__()
        self.cfg = _network_config(config)
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)

    def forward(self, x):
        """x: [N, D, H, W, C_in] channels-last -> logits [N, D, H, W, num_classes]."""
        if x.dim() != 5 or x.shape[-1] != self.cfg["in_channels"]:
            raise ValueError(f"expected input N,D,H,W,{self.cfg['in_channels']}, got {tuple(x.shape)}")
        if any(s % 16 for s in x.shape[1:4]):
            raise ValueError(f"spatial sizes must be multiples of 16, got {tuple(x.shape[1:4])}")
        if self.channels_last_3d:
            inp = x.permute(0, 4, 1, 2, 3).contiguous(memory_format=torch.channels_last_3d)
        else:
            inp = x.permute(0, 4, 1, 2, 3).contiguous()
        feats = self.encoder(inp)
        logits = self.decoder(inp, feats)
        return logits.permute(0, 2, 3, 4, 1)


# --------------------------------------------------------------------------------------------- API

def build_model(config, seed=None):
    """Build a freshly initialised model (network.md init); seeded with torch.manual_seed(seed) if given."""
    if seed is not None:
        torch.manual_seed(seed)
    return VoxMambaNet(config)


def set_channels_last_3d(model, on=True):
    """Switch a VoxMambaNet between NCDHW (on=False, default) and channels_last_3d internal layout:
    converts its 5-D parameters and makes forward convert the input accordingly. Returns model."""
    model.to(memory_format=torch.channels_last_3d if on else torch.contiguous_format)
    model.channels_last_3d = bool(on)
    return model


def hdf5_name(param_name):
    return "/".join(param_name.split("."))


def parameter_shapes(model):
    return {hdf5_name(n): tuple(p.shape) for n, p in model.named_parameters()}


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def _decode_config_attr(v):
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise ValueError(f"attribute 'config' is an array of {v.size} elements, expected one string")
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, bytearray, np.bytes_)):
        v = bytes(v).decode("utf-8")
    elif isinstance(v, np.str_):
        v = str(v)
    if not isinstance(v, str):
        raise ValueError(f"attribute 'config' has unexpected type {type(v).__name__}")
    return json.loads(v.rstrip("\x00"))


def load_hdf5(path, device="cpu"):
    """Read a weights file -> (model in eval mode, full config dict). Strict: every missing, extra,
    mis-shaped or non-float32 tensor is an error naming it."""
    import h5py
    with h5py.File(path, "r") as f:
        if "config" not in f.attrs:
            raise ValueError(f"{path}: no root attribute 'config'")
        config = _decode_config_attr(f.attrs["config"])
        model = VoxMambaNet(config)
        datasets = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = obj

        f.visititems(visit)
        expected = dict(model.named_parameters())
        expected = {hdf5_name(n): p for n, p in expected.items()}
        errors = []
        for n in sorted(set(expected) - set(datasets)):
            errors.append(f"missing tensor {n} {list(expected[n].shape)}")
        for n in sorted(set(datasets) - set(expected)):
            errors.append(f"unexpected tensor {n} {list(datasets[n].shape)}")
        for n in sorted(set(datasets) & set(expected)):
            ds, p = datasets[n], expected[n]
            if tuple(ds.shape) != tuple(p.shape):
                errors.append(f"tensor {n} has shape {list(ds.shape)}, expected {list(p.shape)}")
            elif ds.dtype != np.float32:
                errors.append(f"tensor {n} has dtype {ds.dtype}, expected float32")
        if errors:
            raise ValueError(f"{path}: " + "; ".join(errors))
        with torch.no_grad():
            for n, p in expected.items():
                p.copy_(torch.from_numpy(np.asarray(datasets[n][()], dtype=np.float32)))
    return model.to(device).eval(), config


def save_hdf5(model, config, path):
    """Write the weights file: float32 datasets in nested groups, root attribute `config` as a scalar
    variable-length UTF-8 JSON string."""
    import h5py
    net = _network_config(config)
    if net != model.cfg:
        raise ValueError(f"config {net} does not match the model's {model.cfg}")
    with h5py.File(path, "w") as f:
        for n, p in model.named_parameters():
            f.create_dataset(hdf5_name(n), data=p.detach().to("cpu", torch.float32).contiguous().numpy())
        f.attrs.create("config", json.dumps(config), dtype=h5py.string_dtype("utf-8"))


if __name__ == "__main__":
    for name in ("small", "base"):
        m = VoxMambaNet(config_preset(name, 3))
        print(name, count_parameters(m))
