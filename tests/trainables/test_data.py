"""trainables.data: file formats round-trip byte for byte, splits, statistics, errors."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from tests.trainables.dataset_files import make_cifar_dir, make_idx_dir, write_idx
from trainables.config import DATASETS
from trainables.data import DATASET_SOURCES, load_dataset
from trainables.data._idx import read_idx
from trainables.errors import ConfigError, DatasetNotFoundError


def as_bytes(x: torch.Tensor) -> np.ndarray:
    return np.rint(x.numpy().astype(np.float64) * 255).astype(np.uint8)


def test_registry_covers_every_configured_dataset():
    assert sorted(DATASET_SOURCES) == sorted(DATASETS)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_round_trip_byte_for_byte(tmp_path, compress, name):
    arrays = make_idx_dir(tmp_path, compress)
    data = load_dataset(name, data_dir=str(tmp_path))
    assert data.x_train.shape == (7, 1, 5, 4) and data.x_train.dtype == torch.float32
    assert data.y_train.dtype == torch.int64 and data.input_shape == (1, 5, 4)
    assert np.array_equal(as_bytes(data.x_train)[:, 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(as_bytes(data.x_test)[:, 0], arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(data.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.num_classes == 10


def test_read_idx_parses_wider_big_endian_types(tmp_path):
    array = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 70000
    write_idx(tmp_path / "x", array, 0x0C, compress=False)
    assert np.array_equal(read_idx(tmp_path / "x"), array)


def test_corrupt_idx_file_is_rejected(tmp_path):
    make_idx_dir(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetNotFoundError, match="truncated"):
        load_dataset("mnist", data_dir=str(tmp_path))
    path.write_bytes(b"\x08\x03" + path.read_bytes()[2:])
    with pytest.raises(DatasetNotFoundError, match="not an idx file"):
        load_dataset("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x1f\x8b" + bytes(range(200)), "cannot be read"),  # gzip magic, garbage after it
        (gzip.compress(b"\x00\x00\x08\x03" + bytes(40))[:-12], "cannot be read"),  # cut gzip
        (b"\x00\x00\x08\x03\x00\x00", "truncated idx header"),  # 3 dims announced, 2 bytes
        (gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x07\x00"), "truncated idx header"),
    ],
    ids=["gzip garbage", "cut gzip stream", "truncated header", "truncated header in gzip"],
)
def test_garbage_and_truncated_files_are_one_line_dataset_errors(tmp_path, content, message):
    make_idx_dir(tmp_path, compress=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(content)
    with pytest.raises(DatasetNotFoundError, match=message) as caught:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert "\n" not in str(caught.value) and "train-images" in str(caught.value)


@pytest.mark.parametrize("nested", [False, True])
def test_cifar_batches_round_trip_byte_for_byte(tmp_path, nested):
    batches = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    train_x, train_y, test_x, test_y = make_cifar_dir(batches)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert data.x_train.shape == (10, 3, 32, 32) and data.x_test.shape == (2, 3, 32, 32)
    assert np.array_equal(as_bytes(data.x_train).reshape(10, -1), train_x)
    assert np.array_equal(as_bytes(data.x_test).reshape(2, -1), test_x)
    assert data.y_train.tolist() == train_y and data.y_test.tolist() == test_y
    # per-channel statistics of the training split, shaped (C, 1, 1)
    pixels = train_x.reshape(10, 3, 1024).astype(np.float64) / 255
    assert data.mean.shape == (3, 1, 1) and data.std.shape == (3, 1, 1)
    np.testing.assert_allclose(data.mean.flatten(), pixels.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(data.std.flatten(), pixels.std(axis=(0, 2)), rtol=1e-5)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickle_with_foreign_globals_is_refused(tmp_path):
    make_cifar_dir(tmp_path)
    with (tmp_path / "data_batch_3").open("wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_real_fashion_mnist_loads():
    try:
        data = load_dataset("fashion_mnist")
    except DatasetNotFoundError as err:  # CI installs it: a missing package is a failure
        pytest.fail(f"Fashion-MNIST missing: {err}")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert float(data.x_test.min()) >= 0.0 and float(data.x_test.max()) <= 1.0
    assert np.bincount(data.y_train.numpy()).tolist() == [6000] * 10
    assert 0.2 < float(data.mean) < 0.4 and 0.25 < float(data.std) < 0.45


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("fashion_mnist", {"data_dir": "/nonexistent/fmnist"}, "apt-get install dataset-fashion-mnist"),
        ("mnist", {}, "pass data_dir=DIR"),
        ("mnist", {"data_dir": "/nonexistent/mnist"}, "/nonexistent/mnist"),
        ("cifar10", {}, "pass data_dir=DIR"),
        ("cifar10", {"data_dir": "/nonexistent/cifar"}, "/nonexistent/cifar"),
    ],
)
def test_missing_dataset_raises_one_line_with_how_to_get_it(name, kwargs, expected):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, **kwargs)
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_missing_single_file_is_named(tmp_path):
    make_idx_dir(tmp_path, compress=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("fashion_mnist", data_dir=str(tmp_path))


def test_classes_subset_keeps_and_relabels_in_given_order():
    full = load_dataset("digits")
    sub = load_dataset("digits", classes=(7, 3))
    assert sub.num_classes == 2
    for new, old in enumerate((7, 3)):
        expected = full.x_train[full.y_train == old]
        assert torch.equal(sub.x_train[sub.y_train == new], expected)
    assert set(sub.y_test.tolist()) == {0, 1}
    assert len(sub.y_test) == int(((full.y_test == 7) | (full.y_test == 3)).sum())


@pytest.mark.parametrize("classes", [(3, 3), (10,), (-1, 2), ()])
def test_bad_classes_are_rejected(classes):
    with pytest.raises(ConfigError, match="classes"):
        load_dataset("digits", classes=classes)


def test_subsample_is_deterministic_per_seed_and_a_subset():
    full = load_dataset("digits")
    a = load_dataset("digits", n_train=100, n_test=50, seed=1)
    b = load_dataset("digits", n_train=100, n_test=50, seed=1)
    c = load_dataset("digits", n_train=100, n_test=50, seed=2)
    assert a.x_train.shape[0] == 100 and a.x_test.shape[0] == 50
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    rows = {tuple(r) for r in full.x_train.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in a.x_train.flatten(1).tolist())
    with pytest.raises(ConfigError, match="n_train"):
        load_dataset("digits", n_train=10**6)


def test_digits_split_shape_and_scale():
    data = load_dataset("digits")
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_test.shape == (360, 1, 8, 8)
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    assert data.mean.shape == (1, 1, 1)


@pytest.mark.parametrize("name", ["gaussian", "teacher"])
def test_synthetic_tasks_are_seeded_bounded_and_learnable(name):
    from sklearn.linear_model import LogisticRegression

    a = load_dataset(name, n_train=2000, n_test=500, seed=3)
    b = load_dataset(name, n_train=2000, n_test=500, seed=3)
    c = load_dataset(name, n_train=2000, n_test=500, seed=4)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert torch.equal(a.x_test, c.x_test)  # one fixed test sample of the task
    assert a.x_train.shape == (2000, 32) and a.input_shape == (32,) and a.num_classes == 4
    assert float(a.x_train.min()) >= 0 and float(a.x_train.max()) <= 1
    counts = np.bincount(a.y_train.numpy(), minlength=4)
    assert counts.min() > 0.15 * 2000
    # scalar statistics for vector data, against numpy
    assert a.mean.shape == (1,) and a.std.shape == (1,)
    np.testing.assert_allclose(float(a.std), a.x_train.numpy().astype(np.float64).std(), rtol=1e-5)
    # the labels are a learnable function of x (a fixed task, not noise)
    clf = LogisticRegression(max_iter=300).fit(a.x_train.numpy(), a.y_train.numpy())
    assert clf.score(a.x_test.numpy(), a.y_test.numpy()) > 0.6


def test_constant_channel_std_is_floored():
    from trainables.data._prepare import STD_FLOOR, channel_stats

    x = np.zeros((5, 2, 3, 3), dtype=np.float32)
    x[:, 1] = np.random.default_rng(0).uniform(size=(5, 3, 3))
    _, std = channel_stats(x)
    assert float(std[0]) == pytest.approx(STD_FLOOR) and float(std[1]) > 0.1


def test_unknown_dataset_name():
    with pytest.raises(ConfigError, match="dataset must be one of"):
        load_dataset("imagenet")
