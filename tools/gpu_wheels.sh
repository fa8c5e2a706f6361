#!/usr/bin/env bash
# Fetch, on a machine with pip and a network, the wheels that tools/study_gpu.sh installs on a GPU machine that has
# torch, scipy, PyYAML, matplotlib and requests but cannot install packages (Python 3.12, x86-64 Linux):
# torchattacks and what papermill needs to run a notebook.  Into .whl/ (ignored by git):
#
#   bash tools/gpu_wheels.sh            # ~15 MB
#
# Left out on purpose, to keep the copy of the working tree sent to such a machine small: debugpy and jedi (their
# importers, ipykernel and IPython, run without them) and plotly (each interactive figure then shows a note; the
# static figures and the results are complete).
set -euo pipefail
py=${PYTHON:-python3}
dest=${1:-.whl}
mkdir -p "$dest"
names=(torchattacks papermill entrypoints tenacity nbclient nbformat fastjsonschema jsonschema
       jsonschema-specifications referencing rpds-py jupyter-client jupyter-core platformdirs traitlets ipykernel comm
       matplotlib-inline nest-asyncio2 pyzmq tornado ipython ipython-pygments-lexers pexpect ptyprocess prompt-toolkit
       wcwidth stack-data asttokens executing pure-eval)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dest" "${names[@]}"
du -sh "$dest"
