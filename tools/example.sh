#!/usr/bin/env bash
# The main job on the bundled example: a small float CNN for 8x8 digits that the project trains itself
# (examples/digits/train.py). Inspect it, quantise it to int8 from its calibration samples and compile
# it for Cortex-M4, prove the C bit-exact with the reference interpreter on the host (and show how far
# each int8 layer is from float), then classify the 360 held-out digits on an emulated Cortex-M4 and
# print the int8 accuracy next to the float model's.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=examples/digits/digits_cnn.onnx
CALIBRATION=examples/digits/calibration.npz
mkdir -p out
python3 -c "import numpy as np; t = np.load('examples/digits/test.npz'); np.save('out/digits_test.npy', t['input'])"
tinyc inspect "$MODEL"
tinyc compile "$MODEL" --target cortex-m4 --calibration "$CALIBRATION" --name digits -o out/digits --force
tinyc verify "$MODEL" --calibration "$CALIBRATION" --float-reference --count 20
tinyc run "$MODEL" --target ref --precision float32 --input out/digits_test.npy --output out/digits_float.npy
tinyc run "$MODEL" --target cortex-m4 --calibration "$CALIBRATION" --input out/digits_test.npy \
    --output out/digits_int8.npy
python3 - <<'PY'
import numpy as np
labels = np.load("examples/digits/test.npz")["label"]
for name in ("float", "int8"):
    guess = np.load(f"out/digits_{name}.npy").reshape(len(labels), -1).argmax(axis=1)
    where = "reference interpreter, float32" if name == "float" else "emulated Cortex-M4, int8"
    print(f"digits accuracy ({where}): {np.mean(guess == labels):.4f} on {len(labels)} held-out images")
PY
