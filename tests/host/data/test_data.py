"""Every dataset loader on real or generated data, and the one-line errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from host.data.builtin import DatasetError, load_dataset, stratified_split


def _check(ds, shape, classes):
    assert ds.input_shape == shape
    assert ds.num_classes == classes and len(ds.class_names) == classes
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.uint8 and x.shape[1:] == shape and len(x) == len(y) > 0
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() < classes


def test_mnist5k_offline_default_split():
    ds = load_dataset("mnist5k")
    _check(ds, (28, 28, 1), 10)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (3500, 500, 1000)
    assert np.all(np.bincount(ds.y_test) == 100)  # stratified: 100 per class
    # No image is in two splits (MNIST has no exact duplicates in this subset).
    tr = {x.tobytes() for x in ds.x_train}
    assert not any(x.tobytes() in tr for x in ds.x_test)
    again = load_dataset("mnist5k")
    assert np.array_equal(ds.x_test, again.x_test), "the split must be reproducible"
    other = load_dataset("mnist5k", seed=7)
    assert not np.array_equal(ds.x_train, other.x_train)


def test_digits_kept_8x8():
    ds = load_dataset("digits")
    _check(ds, (8, 8, 1), 10)
    assert ds.x_train.max() == 255 and len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797


def test_stratified_split_disjoint_and_proportional():
    y = np.repeat(np.arange(4), [40, 20, 20, 20])
    parts = stratified_split(y, [0.5, 0.25, 0.25], seed=1)
    allidx = np.concatenate(parts)
    assert len(allidx) == len(y) == len(set(allidx.tolist()))
    assert np.bincount(y[parts[0]]).tolist() == [20, 10, 10, 10]


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.random((60, 12, 12)), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (15, 12, 12, 1), dtype=np.uint8), y_test=np.arange(15) % 3,
             class_names=np.array(["a", "b", "c"]))
    ds = load_dataset(f"npz:{path}")
    _check(ds, (12, 12, 1), 3)
    assert ds.class_names == ["a", "b", "c"] and len(ds.y_test) == 15
    assert len(ds.y_train) + len(ds.y_val) == 60


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4)))
    with pytest.raises(DatasetError, match="lacks arrays: y_train, x_test, y_test"):
        load_dataset(f"npz:{path}")


def _write_folder(root, classes=("cat", "dog"), n=6, size=(20, 16), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 256, (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), dtype=np.uint8)
            Image.fromarray(arr, mode).save(root / c / f"{i}.png")


def test_folder_rgb_resized(tmp_path):
    _write_folder(tmp_path / "imgs")
    ds = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=(10, 12))
    _check(ds, (10, 12, 3), 2)
    assert ds.class_names == ["cat", "dog"] and ds.color == "rgb"


def test_folder_grayscale(tmp_path):
    _write_folder(tmp_path / "g", classes=("a", "b", "c"), mode="L")
    ds = load_dataset(f"folder:{tmp_path / 'g'}")
    _check(ds, (16, 20, 1), 3)


@pytest.mark.parametrize("case,match", [
    ("unknown", "unknown dataset 'nope'"),
    ("missing", "image folder not found"),
    ("empty_class", "class folder has no images"),
    ("corrupt", "corrupt or unreadable image: .*bad.png"),
])
def test_folder_and_name_errors(tmp_path, case, match):
    root = tmp_path / "imgs"
    if case == "unknown":
        spec = "nope"
    elif case == "missing":
        spec = f"folder:{tmp_path / 'absent'}"
    else:
        _write_folder(root)
        if case == "empty_class":
            (root / "zebra").mkdir()
        else:
            (root / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        spec = f"folder:{root}"
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)


def test_keras_dataset_offline_names_cache(tmp_path, monkeypatch):
    """No network and no cache: one line naming the cache path and the offline alternatives.

    "No network" is made here, not assumed: every HTTP(S) request goes to a proxy on a closed
    loopback port (the discard port), so the download fails at once whatever the machine's network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion_mnist")
    msg = str(info.value)
    assert str(tmp_path / "keras" / "datasets") in msg and "mnist5k" in msg and "\n" not in msg
