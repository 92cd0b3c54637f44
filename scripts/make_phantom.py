#!/usr/bin/env python3
"""Write a synthetic CT-like volume as an uncompressed NIfTI-1 file (Python 3 + numpy only).

A smooth "torso" phantom in Hounsfield units (int16): air -1000, soft tissue ~40, two lungs
~-850, a liver-like blob ~60, two kidney-like blobs ~30, a spine-like bone cylinder ~700,
plus Gaussian noise; voxel axes x, y, z run to patient Left, Posterior, Superior. Isotropic
spacing (default 1 mm). The header is written by hand (348-byte NIfTI-1 header, vox_offset
352): qform and sform both code 1 (scanner), matrix diag(-1, -1, 1) in RAS, i.e. ITK's
identity direction (LPS), as CT converted from DICOM usually is; the volume's centre is at
the origin.

Usage: make_phantom.py OUT.nii [--size N | --shape X Y Z] [--spacing MM] [--seed S]
"""
import argparse
import struct
import sys

import numpy as np


def smooth_inside(r, edge):
    """~1 inside r < 1, ~0 outside, a logistic edge of width `edge` (normalised units)."""
    return (1.0 / (1.0 + np.exp(np.clip((r - 1.0) / edge, -50, 50)))).astype(np.float32)


def phantom(shape_xyz, seed):
    nx, ny, nz = shape_xyz
    # Normalised coordinates in [-1, 1], as broadcastable [z, y, x] grids.
    z = np.linspace(-1, 1, nz, dtype=np.float32)[:, None, None]
    y = np.linspace(-1, 1, ny, dtype=np.float32)[None, :, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, None, :]
    edge = 2.0 / max(min(shape_xyz), 8)  # about one voxel

    def ellipsoid(cx, cy, cz, rx, ry, rz):
        r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2)
        return smooth_inside(r, edge)

    def cylinder_z(cx, cy, rx, ry, zmax):
        r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        return smooth_inside(r, edge) * smooth_inside(np.abs(z) / zmax, edge)

    hu = np.full((nz, ny, nx), -1000.0, dtype=np.float32)
    body = ellipsoid(0.0, 0.0, 0.0, 0.90, 0.70, 1.40)  # a torso: crosses the whole z range
    hu += 1040.0 * body                                                         # body, 40 HU
    hu += -140.0 * (body - ellipsoid(0.0, 0.0, 0.0, 0.82, 0.62, 1.38)).clip(0, 1)  # fat rim, -100 HU
    del body
    for side in (-1, 1):
        hu += -890.0 * ellipsoid(0.38 * side, 0.05, 0.42, 0.26, 0.36, 0.40)     # lungs, -850 HU
        hu += -10.0 * ellipsoid(0.42 * side, 0.30, -0.35, 0.10, 0.12, 0.16)    # kidneys, 30 HU
    hu += 20.0 * ellipsoid(-0.35, 0.10, -0.05, 0.30, 0.25, 0.22)                # liver, 60 HU
    hu += 660.0 * cylinder_z(0.0, 0.45, 0.09, 0.09, 1.2)                      # spine, 700 HU
    rng = np.random.default_rng(seed)
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * 15.0
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def nifti1_header(shape_xyz, spacing, datatype=4, bitpix=16):
    nx, ny, nz = shape_xyz
    sx, sy, sz = spacing
    # RAS affine diag(-sx, -sy, sz) (LPS identity); centre voxel at (0, 0, 0).
    ox, oy, oz = sx * (nx - 1) / 2, sy * (ny - 1) / 2, -sz * (nz - 1) / 2
    fields = [
        348, b"", b"", 0, 0, b"r", 0,                       # sizeof_hdr .. dim_info
        3, nx, ny, nz, 1, 1, 1, 1,                          # dim[8]
        0.0, 0.0, 0.0, 0,                                   # intent_p1..3, intent_code
        datatype, bitpix, 0,                                # datatype, bitpix, slice_start
        1.0, sx, sy, sz, 0.0, 0.0, 0.0, 0.0,                # pixdim[8] (pixdim[0] = qfac = 1)
        352.0, 1.0, 0.0,                                    # vox_offset, scl_slope, scl_inter
        0, 0, 2 | 8,                                        # slice_end, slice_code, xyzt_units (mm, s)
        0.0, 0.0, 0.0, 0.0, 0, 0,                           # cal_max, cal_min, slice_duration, toffset, glmax, glmin
        b"VoxMamba synthetic CT phantom (HU)", b"",         # descrip, aux_file
        1, 1,                                               # qform_code, sform_code (scanner)
        0.0, 0.0, 1.0,                                      # quatern b, c, d: 180 deg about z
        ox, oy, oz,                                         # qoffset x, y, z
        -sx, 0.0, 0.0, ox,                                  # srow_x
        0.0, -sy, 0.0, oy,                                  # srow_y
        0.0, 0.0, sz, oz,                                   # srow_z
        b"", b"n+1\0",                                      # intent_name, magic
    ]
    header = struct.pack("<i10s18sihsb8hfffhhhh8ffffhbbffffii80s24shhffffff4f4f4f16s4s", *fields)
    assert len(header) == 348
    return header + b"\0\0\0\0"  # no extensions; data starts at 352


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="output .nii file (uncompressed NIfTI-1)")
    parser.add_argument("--size", type=int, default=256, help="cube edge in voxels (default 256)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="instead of --size")
    parser.add_argument("--spacing", type=float, default=1.0, help="isotropic spacing in mm (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.output.endswith(".nii"):
        sys.exit("make_phantom.py: the output must end in .nii (uncompressed NIfTI-1)")
    shape = tuple(args.shape) if args.shape else (args.size,) * 3
    if min(shape) < 1:
        sys.exit("make_phantom.py: sizes must be positive")
    volume = phantom(shape, args.seed)  # [z, y, x]: x varies fastest on disk, as NIfTI wants
    with open(args.output, "wb") as f:
        f.write(nifti1_header(shape, (args.spacing,) * 3))
        f.write(np.ascontiguousarray(volume).astype("<i2").tobytes())
    print(f"{args.output}: {shape[0]}x{shape[1]}x{shape[2]} int16, {args.spacing:g} mm, "
          f"HU range [{volume.min()}, {volume.max()}], mean {volume.mean():.1f}")


if __name__ == "__main__":
    main()
