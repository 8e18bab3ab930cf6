#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI), from the repository root: downloads into .whl/ (git-ignored) the wheels that
# the GPU machine lacks (its image has Python 3.12, torch, torchvision, torchaudio, timm, numpy, scipy,
# scikit-learn, numba, tqdm, matplotlib, safetensors, pytorch-lightning, accelerate, einops — see
# /work/.library/device/KINDS.md), pinned as constraints.txt / benchmarks/constraints-peers.txt pin them. No deps are
# resolved by pip (--no-deps): each one the check needs is named here.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
WHEELS=(
  # ssl_toolkit's audio decoding and front ends (imported on use)
  soundfile==0.14.0 librosa==0.11.0 audioread==3.1.0 soxr==1.1.0 pooch==1.9.0 platformdirs decorator==5.3.1
  nnaudio==0.3.4 webdataset==1.0.2 braceexpand==0.1.7
  # the peers of the side-by-side throughput
  lightly==1.6.0 byol-pytorch==0.9.1 beartype==0.23.1 hydra-core==1.3.8 omegaconf==2.3.1
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
    -d .whl "${WHEELS[@]}"
# hydra's parser runtime is published as a source archive only: a pure-Python wheel built here works there
"$PY" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
du -sh .whl
ls .whl
