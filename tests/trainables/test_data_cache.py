"""trainables.data caches: a reused worker decodes the same files once, and only the same files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.trainables.test_data import make_idx_dir
from trainables.data import _cache, _idx, load_dataset


@pytest.fixture(autouse=True)
def empty_cache():
    _cache.clear()
    yield
    _cache.clear()


@pytest.fixture
def reads(monkeypatch):
    """Counts idx files read from disk."""
    calls = []
    real = _idx.read_idx

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(_idx, "read_idx", counting)
    return calls


def same(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k))
               for k in ("x_train", "y_train", "x_test", "y_test", "mean", "std")) and (
        a.num_classes, a.input_shape, a.name) == (b.num_classes, b.input_shape, b.name)


def test_second_load_reads_no_file_and_equals_a_fresh_load(tmp_path, reads):
    make_idx_dir(tmp_path, compress=True, seed=3)
    first = load_dataset("mnist", data_dir=str(tmp_path), n_train=5, n_test=2, seed=1)
    assert len(reads) == 4
    second = load_dataset("mnist", data_dir=str(tmp_path), n_train=5, n_test=2, seed=1)
    assert len(reads) == 4  # served from the cache
    _cache.clear()
    fresh = load_dataset("mnist", data_dir=str(tmp_path), n_train=5, n_test=2, seed=1)
    assert len(reads) == 8
    assert same(first, fresh) and same(second, fresh)


def test_other_sizes_or_seed_reuse_the_decode_but_not_the_subsample(tmp_path, reads):
    make_idx_dir(tmp_path, compress=False)
    a = load_dataset("mnist", data_dir=str(tmp_path), n_train=5, seed=0)
    b = load_dataset("mnist", data_dir=str(tmp_path), n_train=4, seed=0)
    c = load_dataset("mnist", data_dir=str(tmp_path), n_train=5, seed=1)
    assert len(reads) == 4  # one decode serves every subsample of the same files
    assert len(b.x_train) == 4 and len(a.x_train) == 5
    assert not torch.equal(a.x_train, c.x_train)  # another seed is another subset
    _cache.clear()
    assert same(c, load_dataset("mnist", data_dir=str(tmp_path), n_train=5, seed=1))


def test_a_changed_file_is_read_again(tmp_path, reads):
    make_idx_dir(tmp_path, compress=True, seed=0)
    old = load_dataset("mnist", data_dir=str(tmp_path))
    # Same names, same sizes, new content and mtime: the identity must see it.
    make_idx_dir(tmp_path, compress=True, seed=1)
    for path in tmp_path.iterdir():
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new = load_dataset("mnist", data_dir=str(tmp_path))
    assert len(reads) == 8
    assert not torch.equal(old.x_train, new.x_train)
    _cache.clear()
    assert same(new, load_dataset("mnist", data_dir=str(tmp_path)))


def test_another_directory_is_another_key(tmp_path, reads):
    make_idx_dir(tmp_path / "a", compress=True, seed=0)
    make_idx_dir(tmp_path / "b", compress=True, seed=1)
    a = load_dataset("mnist", data_dir=str(tmp_path / "a"))
    b = load_dataset("mnist", data_dir=str(tmp_path / "b"))
    assert len(reads) == 8 and not torch.equal(a.x_train, b.x_train)


def test_callers_own_their_tensors(tmp_path):
    make_idx_dir(tmp_path, compress=True)
    first = load_dataset("mnist", data_dir=str(tmp_path), classes=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
    pristine = first.x_train.clone()
    for tensor in (first.x_train, first.x_test, first.mean, first.std):
        tensor.add_(1.0)  # an in-place write by one trial ...
    first.y_train.zero_()
    again = load_dataset("mnist", data_dir=str(tmp_path), classes=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
    assert torch.equal(again.x_train, pristine)  # ... never reaches the next
    _cache.clear()
    assert same(again, load_dataset("mnist", data_dir=str(tmp_path),
                                    classes=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))


def test_synthetic_sources_key_on_sizes_and_seed():
    a = load_dataset("gaussian", n_train=50, n_test=20, seed=0)
    b = load_dataset("gaussian", n_train=60, n_test=20, seed=0)
    c = load_dataset("gaussian", n_train=50, n_test=20, seed=1)
    assert len(b.x_train) == 60 and not torch.equal(a.x_train, c.x_train)
    _cache.clear()
    assert same(a, load_dataset("gaussian", n_train=50, n_test=20, seed=0))


def test_cache_is_bounded():
    for seed in range(_cache.PREPARED_ENTRIES + 3):
        load_dataset("gaussian", n_train=20, n_test=10, seed=seed)
    assert len(_cache._PREPARED.entries) == _cache.PREPARED_ENTRIES
    assert len(_cache._RAW.entries) == _cache.RAW_ENTRIES


def test_a_failed_load_is_not_cached(tmp_path, reads):
    make_idx_dir(tmp_path, compress=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(Exception):
        load_dataset("mnist", data_dir=str(tmp_path))
    make_idx_dir(tmp_path, compress=True)
    data = load_dataset("mnist", data_dir=str(tmp_path))
    assert np.isfinite(data.x_train.numpy()).all() and len(data.y_test) == 3
