"""Read a PyTorch ``.pth`` state dict into numpy arrays without importing torch.

Two on-disk layouts exist: the zip archive of torch >= 1.6 (``<name>/data.pkl`` plus one raw
file per storage under ``<name>/data/``) and the older "legacy" stream (magic number, protocol,
system info, the pickled object, the list of storage keys, then each storage as an int64 element
count followed by its raw bytes). Both pickle the tensors as calls to
``torch._utils._rebuild_tensor_v2`` over persistent storage ids.

The unpickler is restricted: it resolves only the handful of globals a plain state dict uses and
refuses everything else, so a hostile file cannot run code. Storages may be read after the
object that refers to them (legacy layout), so tensors are first unpickled as references and
materialised once every storage is in memory.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ...errors import ConfigurationError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype[Any]
    numel: int
    view: tuple[str, int, int] | None = None  # (root key, element offset, size), legacy only


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> _TensorRef:
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _TensorRef, requires_grad: bool, backward_hooks: object) -> _TensorRef:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a state dict of plain tensors needs; refuses every other global."""

    def __init__(
        self, file: IO[bytes], on_storage: Callable[[_StorageRef], None] | None = None
    ) -> None:
        super().__init__(file)
        self._on_storage = on_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            view = (str(view[0]), int(view[1]), int(view[2]))
        ref = _StorageRef(str(key), storage_type.dtype, int(numel), view)
        if self._on_storage is not None:
            self._on_storage(ref)
        return ref


def _collect(obj: Any, out: dict[str, np.ndarray], storages: dict[str, np.ndarray]) -> None:
    """Materialise every tensor reference of a (flat) state dict into `out`."""
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError("the file does not hold a state dict")
    for name, value in obj.items():
        if isinstance(value, _TensorRef):
            out[str(name)] = _materialise(value, storages)
        elif isinstance(value, dict):
            nested: dict[str, np.ndarray] = {}
            _collect(value, nested, storages)
            out.update({f"{name}.{k}": v for k, v in nested.items()})


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    st = ref.storage
    if st.view is not None:
        root_key, view_offset, view_size = st.view
        flat = storages[root_key][view_offset : view_offset + view_size]
    else:
        flat = storages[st.key]
    flat = flat.view(st.dtype) if flat.dtype != st.dtype else flat
    if any(s < 0 for s in ref.stride) or len(ref.shape) != len(ref.stride):
        raise pickle.UnpicklingError("malformed tensor stride")
    span = sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True) if n > 0)
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, dtype=st.dtype)
    if ref.offset < 0 or ref.offset + span >= flat.size:
        raise pickle.UnpicklingError("tensor runs past the end of its storage")
    strided = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * flat.itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(strided, dtype=st.dtype.newbyteorder("="), order="C", copy=True)


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise pickle.UnpicklingError("file ends in the middle of a storage")
    return data


def _load_legacy(f: IO[bytes]) -> dict[str, np.ndarray]:
    if _RestrictedUnpickler(f).load() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch file (bad magic number)")
    _RestrictedUnpickler(f).load()  # protocol version
    sys_info = _RestrictedUnpickler(f).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian PyTorch files are not supported")
    refs: dict[str, _StorageRef] = {}

    def remember(ref: _StorageRef) -> None:
        refs.setdefault(ref.key if ref.view is None else ref.view[0], ref)

    obj = _RestrictedUnpickler(f, remember).load()
    keys = _RestrictedUnpickler(f).load()
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (numel,) = struct.unpack("<q", _read_exact(f, 8))
        ref = refs.get(str(key))
        dtype = ref.dtype if ref is not None else np.dtype("u1")
        storages[str(key)] = np.frombuffer(_read_exact(f, numel * dtype.itemsize), dtype=dtype)
    out: dict[str, np.ndarray] = {}
    _collect(obj, out, storages)
    return out


def _load_zip(zf: zipfile.ZipFile) -> dict[str, np.ndarray]:
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise pickle.UnpicklingError("zip archive without a single data.pkl")
    prefix = pkl[0][: -len("data.pkl")]
    storages: dict[str, np.ndarray] = {}

    def fetch(ref: _StorageRef) -> None:
        if ref.key not in storages:
            raw = zf.read(f"{prefix}data/{ref.key}")
            storages[ref.key] = np.frombuffer(raw, dtype=ref.dtype)

    obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), fetch).load()
    out: dict[str, np.ndarray] = {}
    _collect(obj, out, storages)
    return out


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Return the tensors of a ``.pth`` state dict as contiguous numpy arrays, keyed by name."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _load_zip(zf)
        with open(path, "rb") as f:
            return _load_legacy(f)
    except (OSError, EOFError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise ConfigurationError(
            f"cannot read the weights file {path}: {exc}; reinstall the package that ships it"
        ) from exc
    except pickle.UnpicklingError as exc:
        raise ConfigurationError(
            f"cannot read the weights file {path}: {exc}; reinstall the package that ships it"
        ) from exc
