"""Tower: graph inputs by role, per-input dtypes, chunking; external_data_files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.onnx_graph import Tower, external_data_files
from viewfinder.errors import ConfigurationError
from viewfinder.testing import build_tiny_clip

FIX = "the fix"


@dataclass(frozen=True)
class Info:
    name: str
    shape: list[int | str | None]
    type: str


@dataclass
class Stub:
    """A session with the given inputs; its output is the sum of each row of every input."""

    inputs: list[Info]
    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)

    def get_inputs(self) -> list[Info]:
        return self.inputs

    def get_outputs(self) -> list[Info]:
        return [Info("embedding", ["batch", 2], "tensor(float)")]

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.feeds.append(feed)
        first = next(iter(feed.values()))
        total = sum(v.reshape(len(v), -1).sum(axis=1).astype(np.float32) for v in feed.values())
        return [np.stack([total, np.full(len(first), len(feed), np.float32)], axis=1)]


def ids_info(name: str = "input_ids", dtype: str = "int32", batch: int | str = "b") -> Info:
    return Info(name, [batch, 4], f"tensor({dtype})")


def test_a_text_graph_takes_ids_with_a_mask_each_in_its_declared_dtype() -> None:
    stub = Stub([Info("attention_mask", ["b", 4], "tensor(int32)"), ids_info(dtype="int64")])
    tower = Tower.open(stub, Path("t.onnx"), text=True, fix=FIX)
    assert tower.main.name == "input_ids"
    ids = np.array([[5, 6, 1, 1], [7, 1, 1, 1]])
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    out = tower(ids, mask)
    (feed,) = stub.feeds
    assert feed["input_ids"].dtype == np.int64 and feed["attention_mask"].dtype == np.int32
    np.testing.assert_array_equal(feed["attention_mask"], mask)
    np.testing.assert_array_equal(out[:, 0], [13 + 2, 10 + 1])


def test_token_type_ids_are_zeros_and_a_missing_mask_is_all_ones() -> None:
    stub = Stub(
        [ids_info(), Info("token_type_ids", ["b", 4], "tensor(int64)"), ids_info("attention_mask")]
    )
    tower = Tower.open(stub, Path("t.onnx"), text=True, fix=FIX)
    tower(np.array([[3, 3, 3, 3]]))
    (feed,) = stub.feeds
    np.testing.assert_array_equal(feed["token_type_ids"], np.zeros((1, 4)))
    np.testing.assert_array_equal(feed["attention_mask"], np.ones((1, 4)))


def test_a_static_batch_pads_every_input_and_drops_the_copies() -> None:
    stub = Stub([ids_info(batch=2), ids_info("attention_mask", batch=2)])
    tower = Tower.open(stub, Path("t.onnx"), text=True, fix=FIX)
    ids = np.arange(12).reshape(3, 4)
    out = tower(ids, np.ones_like(ids))
    assert out.shape == (3, 2) and len(stub.feeds) == 2
    assert all(len(v) == 2 for feed in stub.feeds for v in feed.values())
    np.testing.assert_array_equal(out[:, 0], ids.sum(axis=1) + 4)


@pytest.mark.parametrize(
    ("inputs", "text", "message"),
    [
        (
            [ids_info(), ids_info("position_ids")],
            True,
            r"takes inputs \['input_ids', 'position_ids'\]",
        ),
        ([ids_info("attention_mask"), ids_info("token_type_ids")], True, "token ids"),
        ([Info("image", ["b", 3, 8, 8], "tensor(float)")] * 2, False, "one image input"),
        ([Info("input_ids", ["b", 4], "tensor(float)")], True, "unsupported type"),
        ([ids_info(), Info("attention_mask", ["b", 5], "tensor(int32)")], True, "disagree"),
    ],
)
def test_unusable_inputs_are_refused_by_name(inputs: list[Info], text: bool, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Tower.open(Stub(inputs), Path("t.onnx"), text=text, fix=FIX)


# --- external data -------------------------------------------------------------------------


def test_external_data_files_lists_what_the_graph_references(tmp_path: Path) -> None:
    model = build_tiny_clip(
        tmp_path / "m", external_data={"visual": "single", "textual": "per_tensor"}
    )
    assert external_data_files(model / "visual" / "model.onnx") == ["model.onnx_data"]
    per_tensor = external_data_files(model / "textual" / "model.onnx")
    assert sorted(per_tensor) == ["text_proj", "token_embedding"]
    assert all((model / "textual" / name).is_file() for name in per_tensor)
    inline = build_tiny_clip(tmp_path / "inline")
    assert external_data_files(inline / "visual" / "model.onnx") == []


def test_external_data_outside_the_folder_or_a_broken_graph_is_refused(tmp_path: Path) -> None:
    import onnx

    model = build_tiny_clip(tmp_path / "m", external_data={"visual": "single"})
    graph = onnx.load(str(model / "visual" / "model.onnx"), load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../elsewhere"
    onnx.save(graph, str(tmp_path / "evil.onnx"))
    with pytest.raises(ConfigurationError, match="outside its folder"):
        external_data_files(tmp_path / "evil.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\x00not a protobuf" * 10)
    with pytest.raises(ConfigurationError, match="cannot parse ONNX graph"):
        external_data_files(tmp_path / "junk.onnx")
