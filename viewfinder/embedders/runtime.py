"""ONNX Runtime plumbing: pick execution providers and open inference sessions.

`InferenceSession` is the small protocol the embedders depend on, so a test can hand in a
stub (anything with `get_inputs`, `get_outputs` and `run`) instead of a real model.
`onnxruntime` is imported only when a real session is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigurationError

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"

# Most capable first; CPU always closes the list so a session can be opened anywhere.
PREFERRED_PROVIDERS: tuple[str, ...] = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    CPU,
)

ALIASES: dict[str, str] = {
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": CPU,
}


class TensorInfo(Protocol):
    """What a session says about one input or output (onnxruntime's `NodeArg`)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...

    @property
    def type(self) -> str: ...  # e.g. "tensor(float)", "tensor(int32)"


class InferenceSession(Protocol):
    """The part of `onnxruntime.InferenceSession` the embedders use; safe to share by threads."""

    def get_inputs(self) -> Sequence[TensorInfo]: ...

    def get_outputs(self) -> Sequence[TensorInfo]: ...

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]
    ) -> Sequence[np.ndarray]: ...


SessionFactory = Callable[[Path], InferenceSession]


def available_providers() -> list[str]:
    """Execution providers the installed onnxruntime build offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose_providers(
    requested: Sequence[str] | None = None, available: Sequence[str] | None = None
) -> list[str]:
    """Order the usable providers: `requested` (names or aliases like "cuda") or the default
    preference (CUDA, CoreML, OpenVINO), always ending with CPU."""
    have = set(available_providers() if available is None else available)
    wanted = PREFERRED_PROVIDERS if requested is None else requested
    chosen: list[str] = []
    for name in wanted:
        full = ALIASES.get(name.strip().lower(), name.strip())
        if full in chosen:
            continue
        if full in have or full == CPU:
            chosen.append(full)
        elif requested is not None:
            logger.warning("execution provider %s is not available here; skipping it", full)
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def create_session(
    model_path: Path,
    *,
    providers: Sequence[str] | None = None,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    hint: str = "",
) -> InferenceSession:
    """Open `model_path` with the best available providers; 0 threads means onnxruntime's default.

    Raises ConfigurationError (naming the path, then `hint`) when the model cannot be loaded.
    """
    import onnxruntime as ort

    if intra_op_threads < 0 or inter_op_threads < 0:
        raise ConfigurationError("intra_op_threads and inter_op_threads must be >= 0")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    # no busy-waiting between runs: the cores go to decoding and to the requests meanwhile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    chosen = choose_providers(providers)
    try:
        session: Any = ort.InferenceSession(str(model_path), options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own untyped pybind errors
        message = f"could not load ONNX model {model_path}: {exc}"
        raise ConfigurationError(f"{message}; {hint}" if hint else message) from exc
    logger.info("loaded %s with providers %s", model_path, session.get_providers())
    return session  # type: ignore[no-any-return]
