"""MNIST from the IDX files the user already has (raw or gzip-compressed). Nothing is
downloaded.

IDX (LeCun's format): a 4-byte magic number ``00 00 TT DD`` (TT the element type, 0x08 for
unsigned bytes; DD the number of dimensions), DD big-endian 32-bit sizes, then the elements
in row-major order. MNIST's images are ``0x00000803`` (count, rows, cols), its labels
``0x00000801`` (count).

The files are untrusted input: the magic number, the type byte, the number of dimensions and
that the data length is exactly what the header announces (neither cut short nor followed by
more bytes) are checked, and so are, across the four files, that images and labels agree in
number, that labels lie in 0..9, that training and test images have the same size and that it
fits the network's input layer. Each failure is a ValueError with one line naming the file,
what is wrong with it and what to do. Gzip is recognised by its magic bytes (1f 8b), whatever
the file's name.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..model import check_memory
from .base import Dataset

#: The four files, by role; each may also end in .gz, and the dot variant of the name
#: (``train-images.idx3-ubyte``, as some mirrors ship them) is accepted too.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Magic numbers: unsigned-byte elements in 3 (images) or 1 (labels) dimensions.
MAGIC = {"images": 0x00000803, "labels": 0x00000801}
UNSIGNED_BYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
PIXEL_MAX = 255.0
CLASSES = 10
_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
          0x0D: "float", 0x0E: "double"}
_FIX = "download it again (raw or .gz: both are read)"


def _open(path: Path):
    """The file's bytes, through gzip when it starts with gzip's magic bytes."""
    f = open(path, "rb")  # closed by the caller
    head = f.read(2)
    f.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode="rb"), True
    return f, False


def read_idx(path, kind: str, pixels: int | None = None) -> np.ndarray:
    """One IDX file of unsigned bytes, checked.

    Parameters
    ----------
    path : str or Path
        Raw or gzip-compressed (recognised by its first two bytes).
    kind : {"images", "labels"}
        What the file must hold: 3-D images (count, rows, cols) or 1-D labels (count).
    pixels : int, optional
        For images: the number of inputs they must have (rows * cols), checked from the header
        before the data are read.

    Returns
    -------
    ndarray of uint8
        Shape (count, rows, cols) for images, (count,) for labels.

    Raises
    ------
    ValueError
        One line naming the file and what is wrong: missing, not IDX, wrong magic number or
        element type, a size of zero, data cut short or followed by more bytes, a damaged gzip
        stream, images of a size other than ``pixels``.
    """
    if kind not in MAGIC:
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    path = Path(path)
    try:
        f, zipped = _open(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not an IDX file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror})") from None
    what = "gzip-compressed IDX file" if zipped else "IDX file"
    try:
        with f:
            return _read(f, path, kind, pixels, what)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: damaged gzip data ({str(e) or type(e).__name__}); "
                         f"{_FIX}") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None


def _read(f, path: Path, kind: str, pixels: int | None, what: str) -> np.ndarray:
    ndim = 3 if kind == "images" else 1
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{path}: {len(head)} bytes, too short to be an {what}; {_FIX}")
    magic = int.from_bytes(head, "big")
    if head[:2] != b"\0\0":
        raise ValueError(f"{path}: not an IDX file (magic number 0x{magic:08x}, expected "
                         f"0x{MAGIC[kind]:08x} for MNIST {kind}); {_FIX}")
    if head[2] != UNSIGNED_BYTE:
        name = _TYPES.get(head[2], "unknown")
        raise ValueError(f"{path}: IDX element type 0x{head[2]:02x} ({name}), expected 0x08 "
                         f"(unsigned byte) for MNIST {kind}; {_FIX}")
    if head[3] != ndim:
        other = {1: " (labels?)", 3: " (images?)"}.get(head[3], "")
        raise ValueError(f"{path}: magic number 0x{magic:08x} announces {head[3]} "
                         f"dimension(s){other}, expected 0x{MAGIC[kind]:08x}: MNIST {kind} "
                         f"have {ndim}; check that this is the {kind} file")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path}: the header is cut short ({4 + len(raw)} of {4 + 4 * ndim} "
                         f"bytes); {_FIX}")
    dims = [int.from_bytes(raw[4 * i:4 * i + 4], "big") for i in range(ndim)]
    if 0 in dims:
        raise ValueError(f"{path}: the header announces sizes {'x'.join(map(str, dims))}, "
                         f"which hold no {kind}; {_FIX}")
    if kind == "images" and pixels is not None and dims[1] * dims[2] != pixels:
        raise ValueError(f"{path}: images of {dims[1]}x{dims[2]} = {dims[1] * dims[2]} "
                         f"pixels do not fit a network with {pixels} inputs; give it "
                         f"{dims[1] * dims[2]} (e.g. --sizes {dims[1] * dims[2]},50,10)")
    n = math.prod(dims)
    check_memory(5 * n, f"{path} ({'x'.join(map(str, dims))} {kind})")  # bytes, then float32
    data = f.read(n)
    shape = f"{dims[0]:,} {kind}" + (f" of {dims[1]}x{dims[2]}" if kind == "images" else "")
    if len(data) < n:
        raise ValueError(f"{path}: cut short: the header announces {shape} ({n:,} bytes of "
                         f"data) but the file holds {len(data):,}; {_FIX}")
    if f.read(1):
        raise ValueError(f"{path}: more bytes than the {shape} its header announces "
                         f"({n:,} bytes of data): the file is damaged or not MNIST; {_FIX}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def find(folder, role: str) -> Path:
    """The file of ``role`` (a key of MNIST_FILES) in ``folder``: its name, with .gz, or the
    dot variant of either; a ValueError naming it when there is none."""
    folder = Path(folder)
    name = MNIST_FILES[role]
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise ValueError(f"{folder}: {name} (or {name}.gz) not found; --mnist needs the folder "
                     f"holding MNIST's four IDX files: {', '.join(MNIST_FILES.values())}")


def load_mnist(folder, inputs: int | None = None) -> Dataset:
    """MNIST from its four IDX files in ``folder`` (raw or .gz), checked.

    Pixels are scaled to ``pixel / 255`` in [0, 1] and stored as float32 (the 60,000 training
    images take 188 MB so; batches are converted to the network's dtype when used).

    Parameters
    ----------
    folder : str or Path
    inputs : int, optional
        The network's input layer: the images must have that many pixels.

    Raises
    ------
    ValueError
        One line naming the file and the problem (see :func:`read_idx`), or images and labels
        whose counts disagree, labels outside 0..9, training and test images of different
        sizes, a missing file or folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder; --mnist needs the folder holding "
                         f"MNIST's four IDX files: {', '.join(MNIST_FILES.values())}")
    paths = {role: find(folder, role) for role in MNIST_FILES}
    parts = {}
    size = None
    for part in ("train", "test"):
        ip, lp = paths[f"{part}_images"], paths[f"{part}_labels"]
        images = read_idx(ip, "images", pixels=inputs)
        if size is None:
            size = images.shape[1:]
        elif images.shape[1:] != size:
            raise ValueError(f"{ip}: images of {images.shape[1]}x{images.shape[2]}, but the "
                             f"training images are {size[0]}x{size[1]}: the files do not "
                             "belong together")
        labels = read_idx(lp, "labels")
        if len(labels) != len(images):
            raise ValueError(f"{lp}: {len(labels):,} labels, but {ip.name} holds "
                             f"{len(images):,} images: the files do not belong together")
        bad = np.flatnonzero(labels >= CLASSES)
        if bad.size:
            raise ValueError(f"{lp}: label {int(labels[bad[0]])} at index {int(bad[0])}; MNIST "
                             f"labels lie in 0..{CLASSES - 1}: the file is damaged or not MNIST")
        X = images.reshape(len(images), -1).astype(np.float32)
        X /= np.float32(PIXEL_MAX)
        parts[part] = (X, labels.astype(np.int64))
    return Dataset("mnist", *parts["train"], *parts["test"], CLASSES,
                   source=f"IDX files in {folder.resolve()}",
                   scaling="pixel / 255, in [0, 1] (stored as float32)")
