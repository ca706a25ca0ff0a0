"""The ``.onebit`` file: one self-describing, checksummed file per model.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"\\x89ONEBIT\\n"  (PNG-style: a high byte and a newline catch text-mode damage)
    8       4     format version (uint32), currently 1
    12      4     flags (uint32), 0
    16      8     JSON offset (uint64), always 64
    24      8     JSON length in bytes (uint64)
    32      8     data offset (uint64), a multiple of 64
    40      8     data length in bytes (uint64)
    48      16    reserved, zero
    64      ...   JSON graph description (UTF-8)
    ...           zero padding to the data offset
    data    ...   tensor blobs, each starting at a multiple of 64 bytes from the data offset
    end-32  32    SHA-256 of every byte before it

The JSON holds ``producer`` (onebit and torch versions, date, source model),
``preprocess`` (how to turn an image into the input), ``inputs``/``outputs``
(names, shapes, dtypes), ``tensors`` (name -> dtype, shape, offset, nbytes)
and ``nodes`` (the engine ops in execution order).

:func:`read_model_file` is the numpy-side reader for tools and tests (the
reference runs of ``reference.py``): it checks the container (magic, version,
section bounds, checksum, tensor bounds and sizes, values defined before use)
and raises :class:`ModelFormatError`. The authority on whether a file may run
is the C++ engine's loader (``csrc/engine``, used by :func:`onebit.runtime.load`),
which also checks every op's attributes, shapes and the memory cap; see
docs/deployment.md. This module needs only numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "MAGIC", "ModelFile", "ModelFormatError", "read_model_file", "write_model_file"]

MAGIC = b"\x89ONEBIT\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIQQQQ16s")
_ALIGN = 64
_DIGEST = 32
_DTYPES = {"float32", "float16", "uint64", "int32", "uint8", "int8"}


class ModelFormatError(ValueError):
    """A .onebit file is truncated, corrupted, of another version, or inconsistent."""


@dataclass
class ModelFile:
    """A parsed .onebit file: the JSON description and the tensors (numpy arrays)."""

    meta: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return self.meta["nodes"]


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def write_model_file(path: str | os.PathLike, meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> int:
    """Write ``meta`` and ``tensors`` to ``path`` atomically; return the file size in bytes.

    ``meta`` must hold ``nodes``, ``inputs`` and ``outputs``; the ``tensors``
    table is filled in here. The file appears under its name only once it is
    complete (written to a temporary file in the same directory, fsynced, renamed).
    """
    meta = dict(meta)
    table: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.name not in _DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored")
        raw = arr.tobytes()
        table[name] = {
            "dtype": arr.dtype.name,
            "shape": list(arr.shape),
            "offset": offset,
            "nbytes": len(raw),
        }
        pad = _align(len(raw)) - len(raw)
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    meta["tensors"] = table
    meta.setdefault("format_version", FORMAT_VERSION)
    js = json.dumps(meta, separators=(",", ":"), sort_keys=False).encode()
    data_offset = _align(_HEADER.size + len(js))
    data = b"".join(blobs)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, _HEADER.size, len(js), data_offset, len(data), b"\0" * 16)
    body = header + js + b"\0" * (data_offset - _HEADER.size - len(js)) + data
    digest = hashlib.sha256(body).digest()

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".onebit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.write(digest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(body) + len(digest)


def _fail(path: str, msg: str) -> ModelFormatError:
    return ModelFormatError(f"{path}: {msg}")


def _check_meta(path: str, meta: Any) -> None:
    if not isinstance(meta, dict):
        raise _fail(path, "graph description is not a JSON object")
    for key, typ in (("nodes", list), ("inputs", list), ("outputs", list), ("tensors", dict)):
        if not isinstance(meta.get(key), typ):
            raise _fail(path, f"graph description lacks a valid '{key}' ({typ.__name__})")
    for i, spec in enumerate(meta["inputs"] + meta["outputs"]):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _fail(path, f"input/output spec {i} has no name")
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= -1 for d in shape):
            raise _fail(path, f"input/output {spec['name']!r} has an invalid shape {shape!r}")
    defined = {spec["name"] for spec in meta["inputs"]}
    for i, node in enumerate(meta["nodes"]):
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise _fail(path, f"node {i} has no op name")
        ins, outs = node.get("inputs"), node.get("outputs")
        if not isinstance(ins, list) or not isinstance(outs, list) or not outs:
            raise _fail(path, f"node {i} ({node['op']}) has invalid inputs/outputs")
        if not isinstance(node.get("attrs", {}), dict) or not isinstance(node.get("params", {}), dict):
            raise _fail(path, f"node {i} ({node['op']}) has invalid attrs/params")
        for name in ins:
            if name not in defined:
                raise _fail(path, f"node {i} ({node['op']}) reads {name!r} before it is defined")
        for pname in node.get("params", {}).values():
            if pname not in meta["tensors"]:
                raise _fail(path, f"node {i} ({node['op']}) uses missing tensor {pname!r}")
        defined.update(o for o in outs if isinstance(o, str))
    for spec in meta["outputs"]:
        if spec["name"] not in defined:
            raise _fail(path, f"output {spec['name']!r} is never computed")


def read_model_file(path: str | os.PathLike, verify_checksum: bool = True) -> ModelFile:
    """Read and validate a .onebit file. Tensors are numpy views over one buffer (no copies)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"model file not found: {path}") from None
    if len(buf) < _HEADER.size + _DIGEST:
        raise _fail(path, f"file is truncated ({len(buf)} bytes, smaller than any .onebit file)")
    magic, version, _flags, js_off, js_len, data_off, data_len, _ = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise _fail(path, "not a .onebit file (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise _fail(
            path,
            f"format version {version} is not supported by this onebit (reads version {FORMAT_VERSION}); "
            "re-export the model or upgrade onebit",
        )
    expected = data_off + data_len + _DIGEST
    if js_off != _HEADER.size or data_off % _ALIGN or data_off < js_off + js_len:
        raise _fail(path, "corrupted header (section offsets are inconsistent)")
    if len(buf) != expected:
        what = "truncated" if len(buf) < expected else "has trailing bytes"
        raise _fail(path, f"file is {what}: {len(buf)} bytes, header says {expected}")
    if verify_checksum and hashlib.sha256(memoryview(buf)[:-_DIGEST]).digest() != buf[-_DIGEST:]:
        raise _fail(path, "checksum mismatch: the file is corrupted")
    try:
        meta = json.loads(buf[js_off : js_off + js_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"graph description is not valid JSON ({e})") from None
    _check_meta(path, meta)

    tensors: dict[str, np.ndarray] = {}
    raw = np.frombuffer(buf, dtype=np.uint8)
    for name, spec in meta["tensors"].items():
        try:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(d) for d in spec["shape"])
            off, nbytes = int(spec["offset"]), int(spec["nbytes"])
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"tensor {name!r} has an invalid description") from None
        if spec["dtype"] not in _DTYPES or any(d < 0 for d in shape):
            raise _fail(path, f"tensor {name!r} has an invalid dtype or shape")
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
            raise _fail(path, f"tensor {name!r}: {nbytes} bytes do not hold shape {shape} of {dtype}")
        if off < 0 or off % _ALIGN or off + nbytes > data_len:
            raise _fail(path, f"tensor {name!r} lies outside the data section")
        start = data_off + off
        tensors[name] = raw[start : start + nbytes].view(dtype).reshape(shape)
    return ModelFile(meta, tensors)
