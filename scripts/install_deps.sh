#!/usr/bin/env bash
# Installs VoxMamba's build and run dependencies from Debian 12's packages.
# --test also installs what the test suite uses beyond them (numpy/h5py/PyTorch for the
# PyTorch twin, so the parity test runs instead of skipping; nibabel/pydicom as independent
# readers of the real test images).
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config
          libhdf5-dev libopenblas-dev libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
          libinsighttoolkit5-dev libgdcm-dev zlib1g-dev
          libgtest-dev python3-numpy mricron-data)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3-h5py python3-torch python3-nibabel python3-pydicom hdf5-tools)
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
