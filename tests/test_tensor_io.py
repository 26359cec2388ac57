"""Batches and files of `tinyc run`: shapes, dtypes, names, atomic writes."""
import numpy as np
import pytest

from tinyc.errors import TinycError
from tinyc.tensor_io import (LEADING, SINGLE, STACKED, TensorSpec, join_batch, read_inputs, split_batch,
                             write_outputs)

SPEC = [TensorSpec("x", (1, 3, 4, 4), "int8")]


def test_single_sample():
    x = np.arange(48, dtype=np.int8).reshape(1, 3, 4, 4)
    batch = split_batch({"x": x}, SPEC)
    assert batch.mode == SINGLE and len(batch.samples) == 1
    assert np.array_equal(batch.samples[0]["x"], x)


def test_stacked_batch_round_trips():
    x = np.arange(5 * 48, dtype=np.int64).astype(np.int8).reshape(5, 1, 3, 4, 4)
    batch = split_batch({"x": x}, SPEC)
    assert batch.mode == STACKED and len(batch.samples) == 5
    assert np.array_equal(batch.samples[3]["x"], x[3])
    joined = join_batch([{"y": s["x"][:, :1]} for s in batch.samples], batch.mode)
    assert joined["y"].shape == (5, 1, 1, 4, 4)
    assert np.array_equal(joined["y"][3], x[3][:, :1])


def test_leading_batch_replaces_the_one():
    x = np.arange(7 * 48, dtype=np.int64).astype(np.int8).reshape(7, 3, 4, 4)
    batch = split_batch({"x": x}, SPEC)
    assert batch.mode == LEADING and len(batch.samples) == 7
    assert batch.samples[2]["x"].shape == (1, 3, 4, 4)
    joined = join_batch([{"y": s["x"]} for s in batch.samples], batch.mode)
    assert np.array_equal(joined["y"], x)


@pytest.mark.parametrize("array, message", [
    (np.zeros((1, 3, 4, 5), np.int8), "has shape [1, 3, 4, 5], the model expects [1, 3, 4, 4]"),
    (np.zeros((1, 3, 4, 4), np.float32), "is float32, the model expects int8"),
])
def test_bad_inputs_name_the_input(array, message):
    with pytest.raises(TinycError, match=message.replace("[", r"\[").replace("]", r"\]")):
        split_batch({"x": array}, SPEC)


def test_inputs_must_agree_on_batch():
    specs = [TensorSpec("a", (1, 2), "int8"), TensorSpec("b", (1, 2), "int8")]
    with pytest.raises(TinycError, match="disagree"):
        split_batch({"a": np.zeros((3, 2), np.int8), "b": np.zeros((4, 2), np.int8)}, specs)


def test_npz_names_checked(tmp_path):
    specs = [TensorSpec("a", (2,), "int8"), TensorSpec("b", (2,), "int8")]
    path = tmp_path / "in.npz"
    np.savez(path, a=np.zeros(2, np.int8), c=np.zeros(2, np.int8))
    with pytest.raises(TinycError, match="missing b; unknown c"):
        read_inputs(path, specs)
    np.save(tmp_path / "one.npy", np.zeros(2, np.int8))
    with pytest.raises(TinycError, match="pass an .npz"):
        read_inputs(tmp_path / "one.npy", specs)


def test_corrupt_input_file(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(b"not numpy")
    with pytest.raises(TinycError, match="cannot read"):
        read_inputs(path, SPEC)


def test_write_outputs_is_atomic_and_checked(tmp_path):
    with pytest.raises(TinycError, match="write them to an .npz"):
        write_outputs(tmp_path / "y.npy", {"a": np.zeros(1), "b": np.zeros(1)})
    assert list(tmp_path.iterdir()) == []
    write_outputs(tmp_path / "y.npz", {"a": np.ones(2, np.int8), "b": np.zeros(1)})
    with np.load(tmp_path / "y.npz") as z:
        assert z["a"].tolist() == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.npz"]
