"""Helpers that build small (possibly broken) CIFAR archives for tests."""

import io
import pickle
import tarfile

import numpy as np


def python_batch(n=4, seed=0, labels=None, data=None):
    rng = np.random.default_rng(seed)
    return {
        "batch_label": "test batch",
        "labels": list(labels) if labels is not None else [int(v) for v in rng.integers(0, 10, n)],
        "data": data if data is not None else rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "filenames": [f"img{i}.png" for i in range(n)],
    }


def add_bytes(tar, name, payload, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(payload))


def write_python_archive(path, batches=None, test=None, extra=None):
    """A python-layout .tar.gz; ``batches`` maps member name to dict (or raw bytes)."""
    members = {f"data_batch_{i}": python_batch(seed=i) for i in range(1, 6)}
    members["test_batch"] = python_batch(seed=9)
    members.update(batches or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            payload = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
            add_bytes(tar, f"cifar-10-batches-py/{name}", payload)
        for callback in extra or []:
            callback(tar)
    return path


def binary_records(labels, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (len(labels), 3073), dtype=np.uint8)
    rows[:, 0] = labels
    return rows.tobytes()


def write_binary_archive(path, members=None):
    payloads = {f"data_batch_{i}.bin": binary_records([i % 10] * 3, seed=i) for i in range(1, 6)}
    payloads["test_batch.bin"] = binary_records([1, 2], seed=9)
    payloads.update(members or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in payloads.items():
            add_bytes(tar, f"cifar-10-batches-bin/{name}", payload)
    return path


def idx_bytes(array, type_byte=0x08):
    """An IDX file's bytes for a uint8 ``array`` (header: 0, 0, type, ndim; sizes big-endian)."""
    import struct

    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_folder(folder, train=(12, 3), test=(5, 4), gz=True, seed=0, overrides=None):
    """Fashion-MNIST-shaped IDX files; ``overrides`` maps a file name (without .gz) to raw bytes."""
    import gzip
    import os

    rng = np.random.default_rng(seed)
    files = {}
    for prefix, (count, _) in (("train", train), ("t10k", test)):
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes((np.arange(count) % 10).astype(np.uint8))
    files.update(overrides or {})
    os.makedirs(folder, exist_ok=True)
    for name, payload in files.items():
        path = os.path.join(folder, name + (".gz" if gz else ""))
        with open(path, "wb") as out:
            out.write(gzip.compress(payload) if gz else payload)
    return str(folder)
