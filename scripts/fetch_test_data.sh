#!/usr/bin/env bash
# Real medical images written by other tools, for the io tests: Debian's packages of them are
# downloaded (apt-get download, no install) and unpacked into .testdata/ (git-ignored):
#   mricron-data      Colin27 T1 (templates/ch2.nii.gz) and atlases
#   python3-nibabel   nibabel's test images (anatomical.nii, example_nifti2.nii.gz, ...)
#   python3-pydicom   pydicom's test files (CT_small.dcm, MR_small*.dcm)
# Idempotent: packages already unpacked are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.testdata
mkdir -p "$cache/debs" "$cache/root"
for package in mricron-data python3-nibabel python3-pydicom; do
  if [[ -f "$cache/debs/$package.done" ]]; then continue; fi
  (cd "$cache/debs" && rm -f "${package}"_*.deb && apt-get download "$package" >/dev/null)
  dpkg-deb -x "$cache/debs/${package}"_*.deb "$cache/root"
  touch "$cache/debs/$package.done"
done
echo "test data in $cache/root"
