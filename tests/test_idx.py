"""The IDX reader: round trips, a small fake MNIST directory, and each kind of broken file."""
import gzip

import numpy as np
import pytest

from backprop_oracle.compare.data.datasets import load_dataset
from backprop_oracle.compare.data.idx import IDX_TYPES, MNIST_FILES, IdxError, load_mnist, read_idx, write_idx


def assert_same(name, got, want):
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
    diff = np.argwhere(got != want)
    assert not diff.size, (f"{name}: element {tuple(diff[0])} is {got[tuple(diff[0])]}, "
                           f"expected {want[tuple(diff[0])]}")


# One array per IDX type code, with values that only survive the round trip if the byte order is right.
ARRAYS = {
    0x08: np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10,
    0x09: np.array([-128, -1, 0, 1, 127], dtype=np.int8),
    0x0B: np.array([[-32768, 258], [32767, -2]], dtype=np.int16),
    0x0C: np.array([[-(2 ** 31), 16909060, 2 ** 31 - 1]], dtype=np.int32),
    0x0D: np.array([1.5, -0.1, 3.0e38], dtype=np.float32),
    0x0E: np.array([[np.pi, -1e-300], [2.0 ** 60, 0.0]], dtype=np.float64),
}


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("code", list(ARRAYS))
def test_round_trip(tmp_path, code, suffix):
    path = tmp_path / f"a-{code:02x}{suffix}"
    write_idx(path, ARRAYS[code])
    raw = path.read_bytes()
    if suffix:
        assert raw[:2] == b"\x1f\x8b", f"{path.name}: expected a gzip header, got {raw[:2].hex()}"
        raw = gzip.decompress(raw)
    assert raw[:4] == bytes([0, 0, code, ARRAYS[code].ndim]), f"{path.name}: header {raw[:4].hex()}"
    assert_same(path.name, read_idx(path), ARRAYS[code])


def test_header_is_big_endian(tmp_path):
    write_idx(tmp_path / "s", np.array([258], dtype=np.int16))
    # magic 00 00 0B 01, size 1 as big-endian uint32, then 258 = 0x0102 big-endian.
    assert (tmp_path / "s").read_bytes() == bytes.fromhex("00000b01" "00000001" "0102")


def test_gzip_is_detected_by_content_not_name(tmp_path):
    a = ARRAYS[0x08]
    write_idx(tmp_path / "packed.gz", a)
    (tmp_path / "packed").write_bytes((tmp_path / "packed.gz").read_bytes())  # gzip without .gz
    write_idx(tmp_path / "plain", a)
    (tmp_path / "plain.gz").write_bytes((tmp_path / "plain").read_bytes())  # .gz but not gzipped
    for name in ("packed", "plain.gz"):
        assert_same(name, read_idx(tmp_path / name), a)


def test_unwritable_dtype(tmp_path):
    with pytest.raises(IdxError, match=r"cannot write dtype int64 as IDX; cast to one of: uint8"):
        write_idx(tmp_path / "x", np.arange(3))


def write_raw(tmp_path, data, name="bad"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bad_magic(tmp_path):
    path = write_raw(tmp_path, b"PK\x03\x04" + bytes(8))
    with pytest.raises(IdxError, match=r"bad magic number 504b0304: an IDX file starts with "
                                       r"two zero bytes") as info:
        read_idx(path)
    assert str(info.value).startswith(f"{path}: "), f"the message should name the file: {info.value}"


def test_unknown_type_code(tmp_path):
    path = write_raw(tmp_path, bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(IdxError, match=r"unknown IDX type code 0x0A; valid codes: 0x08, 0x09, 0x0B"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = write_raw(tmp_path, bytes([0, 0, 8, 3, 0, 0, 0, 2]))
    with pytest.raises(IdxError, match=r"truncated header: 3 dimensions need 16 bytes, the file has 8"):
        read_idx(path)


def test_truncated_payload(tmp_path):
    path = tmp_path / "t.idx"
    write_idx(path, np.zeros((2, 3), dtype=np.int32))  # payload 2 * 3 * 4 = 24 bytes
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(IdxError, match=r"t\.idx: truncated payload: shape \(2, 3\) of 4-byte items needs "
                                       r"24 bytes, got 19"):
        read_idx(path)


def test_truncated_payload_gzipped(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(4)))
    with pytest.raises(IdxError, match=r"needs 10 bytes, got 4"):
        read_idx(path)


def test_extra_bytes(tmp_path):
    path = tmp_path / "e.idx"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00")
    with pytest.raises(IdxError, match=r"e\.idx: 3 extra bytes after the payload \(expected 5 bytes"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    path = write_raw(tmp_path, gzip.compress(bytes(100))[:15], "c.gz")
    with pytest.raises(IdxError, match=r"c\.gz: starts like a gzip file but cannot be decompressed"):
        read_idx(path)


# ---- a small fake MNIST directory --------------------------------------------------------------

def fake_mnist(directory, n_train=20, n_test=10, gz=(), labels=None):
    """Write the four MNIST files (those named in ``gz`` gzipped); pixel (i, r, c) = (i + r + c) % 256."""
    directory.mkdir(exist_ok=True)
    def images(n):
        i, r, c = np.meshgrid(np.arange(n), np.arange(28), np.arange(28), indexing="ij")
        return ((i + r + c) % 256).astype(np.uint8)  # (n, 28, 28)
    arrays = {
        "train_images": images(n_train),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8) if labels is None else labels,
        "test_images": images(n_test)[::-1].copy(),
        "test_labels": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }
    for key, stem in MNIST_FILES.items():
        write_idx(directory / (stem + (".gz" if key in gz else "")), arrays[key])
    return arrays


def test_load_mnist_raw(tmp_path):
    want = fake_mnist(tmp_path / "m", gz=("train_images", "test_labels"))
    X_tr, y_tr, X_te, y_te = load_mnist(tmp_path / "m")
    assert_same("X_train", X_tr, want["train_images"])
    assert_same("y_train", y_tr, want["train_labels"].astype(np.int64))
    assert_same("X_test", X_te, want["test_images"])
    assert_same("y_test", y_te, want["test_labels"].astype(np.int64))


def test_load_dataset_mnist(tmp_path):
    want = fake_mnist(tmp_path / "m", gz=tuple(MNIST_FILES))
    ds = load_dataset("mnist", directory=tmp_path / "m")
    assert (ds.X_train.shape, ds.y_train.shape, ds.X_val.shape, ds.y_val.shape) == \
        ((20, 784), (20,), (10, 784), (10,)), "mnist shapes"
    assert (ds.X_train.dtype, ds.y_train.dtype) == (np.float64, np.int64), "mnist dtypes"
    assert (ds.num_classes, ds.task) == (10, "multiclass")
    # Example 3, pixel (row 2, column 5) is (3 + 2 + 5) / 255; flattened rows are row-major.
    assert ds.X_train[3, 2 * 28 + 5] == 10 / 255, f"X_train[3, 61] = {ds.X_train[3, 61]}, expected {10 / 255}"
    assert_same("X_val", ds.X_val, want["test_images"].reshape(10, 784) / 255.0)
    assert_same("y_train", ds.y_train, np.arange(20) % 10)


def test_mnist_limit(tmp_path):
    fake_mnist(tmp_path / "m")
    ds = load_dataset("mnist", directory=tmp_path / "m", limit=7)
    assert ds.X_train.shape == (7, 784) and ds.X_val.shape == (10, 784), (ds.X_train.shape, ds.X_val.shape)
    assert_same("y_train", ds.y_train, np.arange(7))
    with pytest.raises(IdxError, match=r"limit must be an integer in \[1, 20\], got 21"):
        load_mnist(tmp_path / "m", limit=21)


def test_mnist_missing_file(tmp_path):
    fake_mnist(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(IdxError, match=r"t10k-labels-idx1-ubyte: MNIST file not found \(neither "
                                       r"t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte\.gz\); the "
                                       r"directory must hold the four files train-images-idx3-ubyte, "
                                       r"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                       r"t10k-labels-idx1-ubyte, each plain or with \.gz appended"):
        load_mnist(tmp_path / "m")


def test_mnist_missing_directory(tmp_path):
    with pytest.raises(IdxError, match=r"nowhere: not a directory"):
        load_mnist(tmp_path / "nowhere")


def test_mnist_wrong_label_count(tmp_path):
    fake_mnist(tmp_path / "m", labels=np.zeros(19, dtype=np.uint8))
    with pytest.raises(IdxError, match=r"train-labels-idx1-ubyte: 19 labels for 20 images in "
                                       r".*train-images-idx3-ubyte; the counts must be equal"):
        load_mnist(tmp_path / "m")


def test_mnist_label_out_of_range(tmp_path):
    labels = np.zeros(20, dtype=np.uint8)
    labels[4] = 12
    fake_mnist(tmp_path / "m", labels=labels)
    with pytest.raises(IdxError, match=r"labels must be digits 0\.\.9, label 4 is 12"):
        load_mnist(tmp_path / "m")


def test_mnist_images_not_3d(tmp_path):
    fake_mnist(tmp_path / "m")
    write_idx(tmp_path / "m" / "train-images-idx3-ubyte", np.zeros((20, 784), dtype=np.uint8))
    with pytest.raises(IdxError, match=r"images must be 3-D \(n, rows, cols\), got shape \(20, 784\)"):
        load_mnist(tmp_path / "m")


def test_type_table_matches_spec():
    want = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
    got = {code: str(dt.newbyteorder("=")) for code, dt in IDX_TYPES.items()}
    assert got == want
    assert all(dt.byteorder in (">", "|") for dt in IDX_TYPES.values()), "IDX is big-endian"
