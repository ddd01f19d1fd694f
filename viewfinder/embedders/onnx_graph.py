"""One ONNX graph of a model directory: its inputs by role, chunked runs, its weight files.

A tower takes one main input (pixels, or token ids) and gives one embedding. Text towers
exported from Hugging Face encoders (immich's M-CLIP: XLM-RoBERTa, LaBSE) also take
`attention_mask` (and some `token_type_ids`); each input gets the dtype the graph declares.

Graphs over 2 GB keep their weights outside `model.onnx`, in files beside it that the graph
names (`external_data_files`); a model directory is complete only with every one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from ..errors import ConfigurationError
from .runtime import InferenceSession, TensorInfo

Role = Literal["main", "attention_mask", "token_type_ids"]

MAX_BATCH = 32  # bounds peak memory when a caller hands over a long list
MAIN_TEXT_NAMES = ("input_ids", "text")
SIDE_INPUTS: dict[str, Role] = {
    "attention_mask": "attention_mask",
    "token_type_ids": "token_type_ids",
}
DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
_INT_TYPES = ("tensor(int32)", "tensor(int64)")


@dataclass(frozen=True)
class Tower:
    """One ONNX graph with a main input (plus, for text, a mask) and an embedding output."""

    session: InferenceSession
    inputs: tuple[tuple[TensorInfo, Role], ...]
    output: TensorInfo
    path: Path

    @classmethod
    def open(cls, session: InferenceSession, path: Path, *, text: bool, fix: str) -> Tower:
        """Check the graph's inputs and outputs; `fix` ends every error message."""
        inputs, outputs = list(session.get_inputs()), list(session.get_outputs())
        names = [i.name for i in inputs]
        if not outputs or not inputs:
            raise ConfigurationError(f"{path} should take an input and give an embedding; {fix}")
        if len(inputs) == 1:
            roles: list[Role] = ["main"]
        elif not text:
            raise ConfigurationError(
                f"{path} should take one image input, has inputs {names}; {fix}"
            )
        else:
            roles = [SIDE_INPUTS.get(name, "main") for name in names]
            mains = [name for name, role in zip(names, roles, strict=True) if role == "main"]
            if len(mains) != 1 or mains[0] not in MAIN_TEXT_NAMES:
                raise ConfigurationError(
                    f"{path} takes inputs {names}; a text graph takes token ids (`text` or "
                    f"`input_ids`), optionally with `attention_mask` and `token_type_ids`; {fix}"
                )
        for info in inputs:
            allowed = _INT_TYPES if text else tuple(DTYPES)
            if info.type not in allowed:
                raise ConfigurationError(f"{path}: unsupported type {info.type} of {info.name}")
        paired = tuple(zip(inputs, roles, strict=True))
        lengths = {n for info in inputs if (n := _static(info.shape, 1)) is not None}
        if text and len(lengths) > 1:
            raise ConfigurationError(
                f"{path}: inputs {names} disagree on the sequence length ({sorted(lengths)})"
            )
        ordered = tuple(sorted(paired, key=lambda pair: pair[1] != "main"))  # main first
        return cls(session, ordered, outputs[0], path)

    @property
    def main(self) -> TensorInfo:
        return self.inputs[0][0]

    @property
    def batch_size(self) -> int | None:
        return _static(self.main.shape, 0)

    def static_dim(self, axis: int, of: Literal["input", "output"]) -> int | None:
        """A fixed size of the main input's or the output's `axis`, or None when dynamic."""
        return _static((self.main if of == "input" else self.output).shape, axis)

    def __call__(self, batch: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Run `batch` (with its attention `mask`, if the graph takes one) in chunks the graph
        accepts; (n, d) float32, not normalised."""
        step = self.batch_size or MAX_BATCH
        parts = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            mask_chunk = None if mask is None else mask[start : start + step]
            feed = {info.name: _feed(info, role, chunk, mask_chunk) for info, role in self.inputs}
            kept = len(chunk)
            short = step - kept if self.batch_size else 0
            if short:  # a static batch dimension: pad with copies, drop their outputs
                feed = {
                    k: np.concatenate([v, np.repeat(v[-1:], short, 0)]) for k, v in feed.items()
                }
            out = self.session.run([self.output.name], feed)[0]
            parts.append(np.asarray(out, dtype=np.float32).reshape(kept + short, -1)[:kept])
        return np.concatenate(parts)


def _feed(info: TensorInfo, role: Role, main: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    dtype = DTYPES[info.type]
    if role == "main":
        return main.astype(dtype, copy=False)
    if role == "attention_mask":
        return np.ones(main.shape, dtype) if mask is None else mask.astype(dtype, copy=False)
    return np.zeros(main.shape, dtype)


def _static(shape: Sequence[int | str | None], axis: int) -> int | None:
    size = shape[axis] if -len(shape) <= axis < len(shape) else None
    return size if isinstance(size, int) and size > 0 else None


def external_data_files(model_path: Path) -> list[str]:
    """Files beside `model_path` that hold its weights (paths relative to its folder).

    Reads only the graph, never the weights. Raises ConfigurationError when the graph cannot
    be parsed or names a file outside its folder.
    """
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, or an OSError
        raise ConfigurationError(f"cannot parse ONNX graph {model_path}: {exc}") from exc
    found: dict[str, None] = {}  # in the graph's order, without repeats
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        relative = PurePosixPath(location.replace("\\", "/"))
        if not location or relative.is_absolute() or ".." in relative.parts:
            raise ConfigurationError(
                f"{model_path} keeps weights in {location!r}, outside its folder; refusing it"
            )
        found[relative.as_posix()] = None
    return list(found)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers and constants, in subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)
