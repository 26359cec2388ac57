#!/usr/bin/env bash
# The main job on the bundled example: run the KWS model with the reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
tinyc inspect examples/kws/kws_ref_model_qdq.onnx
tinyc run examples/kws/kws_ref_model_qdq.onnx --target ref --input examples/kws/input.npy --output out/kws_output.npy
python3 -c "import numpy as np; y = np.load('out/kws_output.npy'); print('KWS output:', y.tolist(), 'class', int(y.argmax()))"
