"""The IDX file format (LeCun's MNIST files), read and written with NumPy only; never the network.

Layout, all integers big-endian:

    bytes 0-1   0x00 0x00                       magic, part 1
    byte  2     type code (see IDX_TYPES)       magic, part 2
    byte  3     number of dimensions d          magic, part 3
    4 d bytes   size of each dimension, uint32
    payload     prod(sizes) * itemsize bytes, C order (last index fastest), big-endian

A file may be gzipped; that is told by its first two bytes (1f 8b), not by its name.
"""
import gzip
import math
import os
import zlib

import numpy as np
from backprop_oracle.compare.errors import IdxError

# The largest payload read (MNIST's training images are 47 MB): a header declaring more is corrupt.
MAX_PAYLOAD = 2**34

# type code -> big-endian NumPy dtype, as the IDX spec lists them.
IDX_TYPES = {
    0x08: np.dtype(">u1"),  # unsigned byte (MNIST pixels and labels)
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short, 2 bytes
    0x0C: np.dtype(">i4"),  # int, 4 bytes
    0x0D: np.dtype(">f4"),  # float, 4 bytes
    0x0E: np.dtype(">f8"),  # double, 8 bytes
}

GZIP_MAGIC = b"\x1f\x8b"

# The four files of the MNIST distribution, each found plain or with ".gz" appended.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _reader(path):
    """A function ``take(n)`` returning the file's next n bytes (fewer at its end), decompressing as
    it goes when the file starts with the gzip magic: a gzipped file is never inflated beyond what
    its header declares (a corrupt or hostile header cannot fill the memory)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise IdxError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise IdxError(f"{path}: is a directory, not an IDX file") from None
    # Decide by content, not name: browsers often unpack MNIST's .gz files and keep the .gz name.
    if raw[:2] != GZIP_MAGIC:
        position = 0

        def take(n):
            nonlocal position
            chunk = raw[position:position + n]
            position += len(chunk)
            return chunk
        return take
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = [raw]

    def take_gz(n):
        out = b""
        try:
            while len(out) < n and (pending[0] or inflate.unconsumed_tail):
                source = inflate.unconsumed_tail or pending[0]
                pending[0] = b"" if source is pending[0] else pending[0]
                out += inflate.decompress(source, n - len(out))
                if inflate.eof:
                    break
        except zlib.error as e:
            raise IdxError(f"{path}: starts like a gzip file but cannot be decompressed ({e}); "
                           f"download it again") from None
        if len(out) < n and not inflate.eof:
            raise IdxError(f"{path}: starts like a gzip file but cannot be decompressed (the compressed "
                           f"stream ends early); download it again")
        return out
    return _buffered(take_gz)


def _buffered(take):
    """``take`` reading ahead by the largest IDX header (4 + 4 * 255 bytes), so that a gzipped file
    too short to hold one is told as a broken download rather than as a bad header."""
    ahead = [take(4 + 4 * 255)]

    def take_buffered(n):
        head, ahead[0] = ahead[0][:n], ahead[0][n:]
        return head if len(head) == n else head + take(n - len(head))
    return take_buffered


def read_idx(path):
    """Read an IDX file (plain or gzipped) into an array of shape ``sizes`` in native byte order.

    Checks the magic number, the header and that the payload is exactly prod(sizes) * itemsize bytes.
    """
    take = _reader(path)
    magic = take(4)
    if len(magic) < 4:
        raise IdxError(f"{path}: {len(magic)} bytes is too short for the 4-byte IDX magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise IdxError(f"{path}: bad magic number {magic[:4].hex()}: an IDX file starts with two zero "
                       f"bytes; is this an IDX (MNIST) file?")
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        valid = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise IdxError(f"{path}: unknown IDX type code 0x{code:02X}; valid codes: {valid}")
    if ndim == 0:
        raise IdxError(f"{path}: header says 0 dimensions; an IDX file needs at least one")
    sizes = take(4 * ndim)
    header = 4 + 4 * ndim
    if len(sizes) < 4 * ndim:
        raise IdxError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, "
                       f"the file has {4 + len(sizes)}")
    shape = tuple(int(v) for v in np.frombuffer(sizes, dtype=">u4", count=ndim))
    dtype = IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize          # Python ints: no overflow
    if expected > MAX_PAYLOAD:
        raise IdxError(f"{path}: the header declares shape {shape}, {expected:,} bytes of data, more than "
                       f"any IDX file this reads ({MAX_PAYLOAD:,}); the file is corrupt or not an IDX file")
    payload = take(expected + 1)
    actual = len(payload)
    if actual < expected:
        raise IdxError(f"{path}: truncated payload: shape {shape} of {dtype.itemsize}-byte items needs "
                       f"{expected} bytes, got {actual}; download the file again")
    if actual > expected:
        rest = 1 + len(take(2**20))
        more = f"{rest}" if rest <= 2**20 else f"more than {2**20}"
        raise IdxError(f"{path}: {more} extra bytes after the payload (expected {expected} "
                       f"bytes for shape {shape}); the header and data disagree")
    data = np.frombuffer(payload, dtype=dtype, count=expected // dtype.itemsize)
    # A native-order copy: writable, and no big-endian dtype leaking into arithmetic downstream.
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ".gz").

    The type code follows the dtype: uint8 0x08, int8 0x09, int16 0x0B, int32 0x0C, float32 0x0D,
    float64 0x0E. Any other dtype is an error rather than a silent cast.
    """
    array = np.asarray(array)
    by_kind = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in by_kind:
        names = ", ".join(str(dt) for dt in by_kind)
        raise IdxError(f"{path}: cannot write dtype {array.dtype} as IDX; cast to one of: {names}")
    if not 1 <= array.ndim <= 255:
        raise IdxError(f"{path}: IDX holds 1 to 255 dimensions, got an array of shape {array.shape}")
    if any(s >= 2 ** 32 for s in array.shape):
        raise IdxError(f"{path}: every dimension must be below 2**32, got shape {array.shape}")
    code = by_kind[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        # mtime=0 so the same array always gives the same bytes.
        data = gzip.compress(header + payload, mtime=0)
    else:
        data = header + payload
    with open(path, "wb") as f:
        f.write(data)


def _find_mnist_file(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    expected = ", ".join(MNIST_FILES.values())
    raise IdxError(f"{os.path.join(directory, stem)}: MNIST file not found (neither {stem} nor "
                   f"{stem}.gz); the directory must hold the four files {expected}, each plain or "
                   f"with .gz appended")


def _check_pair(images, labels, images_path, labels_path):
    if images.ndim != 3:
        raise IdxError(f"{images_path}: images must be 3-D (n, rows, cols), got shape {images.shape}")
    if labels.ndim != 1:
        raise IdxError(f"{labels_path}: labels must be 1-D (n,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IdxError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in "
                       f"{images_path}; the counts must be equal")
    if not np.issubdtype(labels.dtype, np.integer):
        raise IdxError(f"{labels_path}: labels must be integers, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise IdxError(f"{labels_path}: labels must be digits 0..9, label {bad[0]} is {labels[bad[0]]}")


def load_mnist(directory, limit=None):
    """Read MNIST from ``directory``: (X_train, y_train, X_test, y_test) as stored.

    Shapes: X_train (n, rows, cols), y_train (n,), X_test (m, rows, cols), y_test (m,); images keep
    their stored dtype (uint8 pixels 0..255 for MNIST), labels are int64. ``limit`` keeps the first
    ``limit`` training examples (the test set is always whole).
    """
    if not os.path.isdir(directory):
        raise IdxError(f"{directory}: not a directory; give the directory that holds "
                       f"{', '.join(MNIST_FILES.values())} (plain or .gz)")
    paths = {key: _find_mnist_file(directory, stem) for key, stem in MNIST_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        _check_pair(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                    paths[f"{split}_images"], paths[f"{split}_labels"])
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise IdxError(f"{paths['test_images']}: images are {arrays['test_images'].shape[1:]} but the "
                       f"training images are {arrays['train_images'].shape[1:]}")
    for key in ("train_images", "test_images"):
        if arrays[key].shape[0] == 0 or arrays[key].ndim < 2 or 0 in arrays[key].shape:
            raise IdxError(f"{paths[key]}: holds no images (shape {arrays[key].shape}); the MNIST files "
                           "hold 60000 training and 10000 test images of 28x28")
    X_train, y_train = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    if limit is not None:
        n = X_train.shape[0]
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= n:
            raise IdxError(f"{paths['train_images']}: limit must be an integer in [1, {n}], got {limit!r}")
        X_train, y_train = X_train[:limit], y_train[:limit]
    return X_train, y_train, arrays["test_images"], arrays["test_labels"].astype(np.int64)
