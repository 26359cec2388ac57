#!/usr/bin/env bash
# The main job on the bundled example (MLPerf Tiny KWS, int8 QDQ ONNX):
# inspect it, compile it to C for Cortex-M4, prove the C bit-exact on the host, run it on an emulated
# Cortex-M4 with its cost per layer.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=examples/kws/kws_ref_model_qdq.onnx
mkdir -p out
tinyc inspect "$MODEL"
tinyc compile "$MODEL" --target cortex-m4 --name kws -o out/kws --force
tinyc verify "$MODEL" --count 20 --inputs examples/kws/input.npy
tinyc run "$MODEL" --target cortex-m4 --profile --input examples/kws/input.npy --output out/kws_output.npy
python3 -c "import numpy as np; y = np.load('out/kws_output.npy'); print('KWS output:', y.tolist(), '-> class', int(y.argmax()))"
