#!/usr/bin/env bash
# Wheels the GPU machines lack (their image has torch, numpy, h5py, numba, tensorboard, ... but no Gymnasium, MuJoCo or
# Minari, and no network): download them here into .whl/ (git-ignored via .git/info/exclude), carry `.whl` with the
# `run` call, and let scripts/gpu_check.sh / gpu_matrix.sh install them into /tmp/site. Python there is 3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  gymnasium==1.4.0 minari==0.5.4 farama-notifications==0.0.6 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 \
  glfw==2.11.0 pyopengl==3.1.10 websockets==17.4
du -sh .whl
