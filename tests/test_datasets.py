"""Data sets: the IDX reader on files the tests write (valid and damaged in every way the
reader checks), MNIST's four files together, synthetic clusters, the scikit-learn digits."""

import gzip
import struct
import sys

import numpy as np
import pytest

from gradbench import datasets


def idx_bytes(array, magic=None, type_byte=0x08, dims=None):
    """IDX bytes of a uint8 array (the header may be made wrong on purpose)."""
    array = np.asarray(array, dtype=np.uint8)
    dims = array.shape if dims is None else dims
    head = magic if magic is not None else bytes([0, 0, type_byte, len(dims)])
    return head + b"".join(struct.pack(">I", d) for d in dims) + array.tobytes()


def images(n=5, rows=4, cols=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, rows, cols), dtype=np.uint8)


def labels(n=5, seed=0):
    return np.random.default_rng(seed).integers(0, 10, size=n, dtype=np.uint8)


def write(path, data, zipped=False):
    path.write_bytes(gzip.compress(data) if zipped else data)
    return path


def mnist_folder(folder, n_train=12, n_test=5, rows=4, cols=3, zipped=False):
    """The four MNIST files, tiny, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if zipped else ""
    names = datasets.MNIST_FILES
    write(folder / (names["train_images"] + suffix),
          idx_bytes(images(n_train, rows, cols, 1)), zipped)
    write(folder / (names["train_labels"] + suffix), idx_bytes(labels(n_train, 1)), zipped)
    write(folder / (names["test_images"] + suffix),
          idx_bytes(images(n_test, rows, cols, 2)), zipped)
    write(folder / (names["test_labels"] + suffix), idx_bytes(labels(n_test, 2)), zipped)
    return folder


@pytest.mark.parametrize("zipped", [False, True])
def test_reads_valid_files_raw_and_gzip(tmp_path, zipped):
    a = images()
    got = datasets.read_idx(write(tmp_path / "x", idx_bytes(a), zipped), "images")
    assert got.dtype == np.uint8 and np.array_equal(got, a)
    y = labels()
    assert np.array_equal(datasets.read_idx(write(tmp_path / "y", idx_bytes(y), zipped),
                                            "labels"), y)


def test_gzip_is_recognised_by_its_magic_bytes_not_its_name(tmp_path):
    a = images()
    # compressed under a raw name, raw under a .gz name: both read
    assert np.array_equal(datasets.read_idx(write(tmp_path / "raw-name", idx_bytes(a), True),
                                            "images"), a)
    assert np.array_equal(datasets.read_idx(write(tmp_path / "x.gz", idx_bytes(a)), "images"), a)


def one_line_error(path, kind, *words, **kwargs):
    with pytest.raises(ValueError) as info:
        datasets.read_idx(path, kind, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.mark.parametrize("zipped", [False, True])
def test_damaged_files_are_refused_with_one_line(tmp_path, zipped):
    a, y = images(), labels()
    good = idx_bytes(a)
    cases = [
        ("wrong-magic", idx_bytes(a, magic=b"\x12\x34\x08\x03"), "images",
         ["not an IDX file", "0x00000803"]),
        ("labels-as-images", idx_bytes(y), "images", ["0x00000801", "images file"]),
        ("images-as-labels", good, "labels", ["0x00000803", "labels file"]),
        ("type-byte", idx_bytes(a, type_byte=0x0D), "images",
         ["element type 0x0d (float)", "0x08 (unsigned byte)"]),
        ("truncated", good[:-7], "images", ["cut short", "5 images of 4x3", "60 bytes"]),
        ("trailing", good + b"\0\0", "images", ["more bytes than", "5 images"]),
        ("short-header", good[:10], "images", ["header is cut short"]),
        ("tiny", b"\0\0", "images", ["too short"]),
        ("zero", idx_bytes(np.zeros((0, 4, 3)), dims=(0, 4, 3)), "images", ["hold no images"]),
    ]
    for name, data, kind, words in cases:
        one_line_error(write(tmp_path / name, data, zipped), kind, *words)


def test_missing_file_and_damaged_gzip(tmp_path):
    one_line_error(tmp_path / "nope", "images", "no such file")
    data = gzip.compress(idx_bytes(images()))
    one_line_error(write(tmp_path / "cut.gz", data[:-12]), "images", "damaged gzip")


def test_image_size_must_fit_the_input_layer(tmp_path):
    p = write(tmp_path / "x", idx_bytes(images(rows=4, cols=3)))
    assert datasets.read_idx(p, "images", pixels=12).shape == (5, 4, 3)
    one_line_error(p, "images", "4x3 = 12 pixels", "64 inputs", "--sizes 12,", pixels=64)


def test_huge_header_is_refused_before_reading(tmp_path):
    # a header announcing 2^32-1 images of 2^16 x 2^16 pixels: memory checked first
    p = write(tmp_path / "x", idx_bytes(images(), dims=(2**32 - 1, 2**16, 2**16)))
    one_line_error(p, "images", "GiB of memory")


@pytest.mark.parametrize("zipped", [False, True])
def test_mnist_folder(tmp_path, zipped):
    folder = mnist_folder(tmp_path / "m", zipped=zipped)
    d = datasets.load_mnist(folder, inputs=12)
    assert d.name == "mnist" and d.classes == 10 and d.inputs == 12
    assert d.X_train.shape == (12, 12) and d.X_test.shape == (5, 12)
    assert d.X_train.dtype == np.float32
    assert np.allclose(d.X_train, images(12, 4, 3, 1).reshape(12, 12) / 255.0)
    assert np.array_equal(d.y_train, labels(12, 1)) and d.y_train.dtype == np.int64
    assert 0 <= d.X_train.min() and d.X_train.max() <= 1
    assert d.describe()["n_train"] == 12


def test_mnist_dot_names_are_accepted(tmp_path):
    folder = mnist_folder(tmp_path / "m")
    for f in folder.iterdir():
        f.rename(f.with_name(f.name.replace("-idx", ".idx")))
    assert datasets.load_mnist(folder).X_test.shape == (5, 12)


def mnist_error(folder, *words, inputs=None):
    with pytest.raises(ValueError) as info:
        datasets.load_mnist(folder, inputs=inputs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_mnist_files_that_do_not_belong_together(tmp_path):
    names = datasets.MNIST_FILES
    folder = mnist_folder(tmp_path / "count")
    write(folder / names["train_labels"], idx_bytes(labels(11)))
    mnist_error(folder, names["train_labels"], "11 labels", "12 images")

    folder = mnist_folder(tmp_path / "range")
    y = labels(5, 2)
    y[3] = 10
    write(folder / names["test_labels"], idx_bytes(y))
    mnist_error(folder, names["test_labels"], "label 10 at index 3", "0..9")

    folder = mnist_folder(tmp_path / "size")
    write(folder / names["test_images"], idx_bytes(images(5, 3, 4)))
    mnist_error(folder, names["test_images"], "3x4", "4x3")

    folder = mnist_folder(tmp_path / "fit")
    mnist_error(folder, names["train_images"], "12 pixels", "784 inputs", inputs=784)


def test_mnist_missing_files_or_folder(tmp_path):
    names = datasets.MNIST_FILES
    mnist_error(tmp_path / "none", "no such folder", names["train_images"])
    folder = mnist_folder(tmp_path / "m")
    (folder / names["test_labels"]).unlink()
    mnist_error(folder, f"{names['test_labels']} (or {names['test_labels']}.gz) not found")


def test_synthetic_is_deterministic_and_shaped():
    a = datasets.synthetic(inputs=7, classes=3, n_train=50, n_test=20, seed=4)
    b = datasets.synthetic(inputs=7, classes=3, n_train=50, n_test=20, seed=4)
    c = datasets.synthetic(inputs=7, classes=3, n_train=50, n_test=20, seed=5)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    assert a.X_train.shape == (50, 7) and a.X_test.shape == (20, 7)
    assert set(np.unique(a.y_train)) <= {0, 1, 2} and a.classes == 3


def test_synthetic_classes_are_separable():
    """Nearest class mean (estimated on the training part) classifies the test part well."""
    d = datasets.synthetic(inputs=20, classes=5, n_train=500, n_test=200)
    means = np.stack([d.X_train[d.y_train == k].mean(axis=0) for k in range(5)])
    dist = ((d.X_test[:, None, :] - means[None]) ** 2).sum(axis=2)
    assert (dist.argmin(axis=1) == d.y_test).mean() > 0.9


@pytest.mark.parametrize("kwargs", [{"inputs": 0}, {"classes": 1}, {"n_train": 0}])
def test_synthetic_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="must be at least"):
        datasets.synthetic(**kwargs)


def test_make_batch_is_one_function_under_its_public_names():
    import gradbench as gb
    import gradbench.data

    assert gb.make_batch is gradbench.data.make_batch is datasets.make_batch
    assert "make_batch" in gb.__all__


@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_make_batch_is_deterministic_and_shaped(loss):
    import gradbench as gb

    net = gb.MLP(sizes=[5, 4, 3], activation="tanh", loss=loss, dtype="float32", seed=0)
    X, T = datasets.make_batch(net, 6, seed=2)
    X2, T2 = datasets.make_batch(net, 6, seed=2)
    assert np.array_equal(X, X2) and np.array_equal(T, T2)
    assert X.shape == (6, 5) and X.dtype == np.float32
    if loss == "softmax_ce":
        assert T.shape == (6,) and T.dtype == np.int64 and set(T) <= {0, 1, 2}
    else:
        assert T.shape == (6, 3) and T.dtype == np.float32 and 0 <= T.min() and T.max() < 1
    with pytest.raises(ValueError, match="batch must be a whole number of at least 1"):
        datasets.make_batch(net, 0)


def test_digits_split_and_scaling():
    pytest.importorskip("sklearn", reason="scikit-learn not installed (gradbench-fd[digits])")
    d = datasets.digits()
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert d.X_train.min() == 0 and d.X_train.max() == 1
    assert np.array_equal(d.y_train, datasets.digits().y_train)  # fixed split
    assert set(np.unique(d.y_test)) == set(range(10))


def test_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    module = sys.modules["gradbench.datasets.digits"]  # the name datasets.digits is the loader
    monkeypatch.setattr(module, "digits_available", lambda: False)
    with pytest.raises(ValueError, match=r"gradbench-fd\[digits\]"):
        module.digits()
