"""M-CLIP text towers (immich's XLM-Roberta-Large-Vit-* and LABSE-Vit-L-14): input_ids and
attention_mask, against a reference ONNX Runtime run fed as immich's loader feeds it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from tokenizers import Tokenizer

from viewfinder.embedders.onnx_clip import OnnxClipEmbedder
from viewfinder.testing import build_tiny_clip
from viewfinder.testing.tiny_clip import LABSE_SPECIALS, XLM_ROBERTA_SPECIALS

CONTEXT = 16
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255,) * 3}
TEXTS = [
    "a red square",
    "  A Green   photo of a dog ",
    "blue sky over the sea",
    "white",
    "",
    "a photo of a " + "red " * 40 + "car",  # longer than the context: truncated
]


def reference_texts(model: Path, texts: list[str], mask: str = "tokenizer") -> np.ndarray:
    """What immich's MClipTextualEncoder computes: one text per run, padded and truncated to
    config.json's context length by the tokenizer, int32 inputs (cast to the graph's type)."""
    context = json.loads((model / "config.json").read_text())["text_cfg"]["context_length"]
    cfg = json.loads((model / "textual" / "tokenizer_config.json").read_text())
    tokenizer = Tokenizer.from_file(str(model / "textual" / "tokenizer.json"))
    pad = cfg["pad_token"]
    tokenizer.enable_padding(length=context, pad_token=pad, pad_id=tokenizer.token_to_id(pad))
    tokenizer.enable_truncation(max_length=context)
    session = ort.InferenceSession(str(model / "textual" / "model.onnx"))
    dtypes = {
        i.name: np.int64 if i.type == "tensor(int64)" else np.int32 for i in session.get_inputs()
    }
    rows = []
    for text in texts:
        encoding = tokenizer.encode(" ".join(text.split()))
        attention = encoding.attention_mask if mask == "tokenizer" else [1] * context
        feed = {
            "input_ids": np.array([encoding.ids], dtypes["input_ids"]),
            "attention_mask": np.array([attention], dtypes["attention_mask"]),
        }
        rows.append(session.run(None, feed)[0][0])
    vectors = np.asarray(rows, np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def reference_images(
    model: Path, embedder: OnnxClipEmbedder, images: list[Image.Image]
) -> np.ndarray:
    session = ort.InferenceSession(str(model / "visual" / "model.onnx"))
    rows = [
        session.run(None, {"image": embedder.preprocess(image)[None]})[0][0] for image in images
    ]
    vectors = np.asarray(rows, np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("tokens", "dtype", "batch_size"),
    [
        (XLM_ROBERTA_SPECIALS, "int32", 1),  # as immich exports XLM-Roberta-Large-Vit-B-32
        (LABSE_SPECIALS, "int64", None),  # LaBSE's BERT tokenizer names no end token
    ],
)
def test_mclip_ranks_as_a_reference_run(
    tmp_path: Path, tokens: tuple[str, str, str], dtype: str, batch_size: int | None
) -> None:
    model = build_tiny_clip(
        tmp_path / "XLM-Roberta-Tiny-Vit-B-32",
        family="mclip",
        mclip_tokens=tokens,
        text_dtype=dtype,  # type: ignore[arg-type]
        batch_size=batch_size,
        context_length=CONTEXT,
    )
    embedder = OnnxClipEmbedder(model)
    assert embedder.family == "clip" and embedder.tokenizer.mode == "hf"

    texts = embedder.embed_texts(TEXTS)
    expected = reference_texts(model, TEXTS)
    np.testing.assert_allclose(texts, expected, atol=1e-6)
    # the graph averages over the mask alone, so a wrong mask would give other vectors
    assert np.abs(reference_texts(model, TEXTS, mask="ones") - expected).max() > 1e-2

    images = [Image.new("RGB", (48, 40), rgb) for rgb in COLOURS.values()]
    image_vectors = embedder.embed_images(images)
    np.testing.assert_allclose(image_vectors, reference_images(model, embedder, images), atol=1e-6)
    ranked = np.argsort(-(texts @ image_vectors.T), axis=1)
    np.testing.assert_array_equal(ranked, np.argsort(-(expected @ image_vectors.T), axis=1))
    colour_texts = embedder.embed_texts([f"a {name} square" for name in COLOURS])
    assert list((colour_texts @ image_vectors.T).argmax(axis=1)) == list(range(len(COLOURS)))


def test_mclip_tokens_pad_with_the_pad_token_and_keep_the_end_token(tmp_path: Path) -> None:
    model = build_tiny_clip(tmp_path / "m", family="mclip", context_length=CONTEXT)
    tokenizer = Tokenizer.from_file(str(model / "textual" / "tokenizer.json"))
    start, end, pad = (tokenizer.token_to_id(t) for t in XLM_ROBERTA_SPECIALS)
    batch = OnnxClipEmbedder(model).tokenizer.encode(["a red square", "red " * 100])
    short, long = batch.ids
    assert list(short[:5]) == [start, *short[1:4], end] and np.all(short[5:] == pad)
    assert pad != 0 and list(batch.mask[0]) == [1] * 5 + [0] * (CONTEXT - 5)
    assert long[0] == start and long[-1] == end and np.all(batch.mask[1] == 1)
