"""Write a tiny random CLIP-style model directory in the immich layout, without torch.

    model_dir/
      config.json                    open_clip model config (embed_dim, vision_cfg, text_cfg)
      visual/model.onnx              image (N,3,S,S) float32 -> embedding (N,D)
      visual/preprocess_cfg.json     size, mean, std, interpolation, resize_mode
      textual/model.onnx             text (N,L) int32|int64 -> embedding (N,D); M-CLIP:
                                     input_ids, attention_mask (N,L) int32|int64 -> (N,D)
      textual/tokenizer.json         a real `tokenizers` WordPiece tokenizer
      textual/tokenizer_config.json
      textual/special_tokens_map.json

The weights are random, but colour words are wired to the mean pixel colour, so "a red
square" ranks a red image above a blue one; everything else is a real function of the pixels
(a patchify conv stack) and of the token ids (embedding lookup, masked mean, projection).
The M-CLIP variant (`family="mclip"`, as immich exports XLM-RoBERTa and LaBSE text towers)
averages over its `attention_mask` input alone, so a wrong mask changes its vectors.
Bigger `image_size`, `width`, `depth`, `embed_dim` make a heavier model for benchmarks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..embedders.fake import COLOURS

logger = logging.getLogger(__name__)

Family = Literal["clip", "siglip", "mclip"]
ExternalData = Literal["single", "per_tensor"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

HF_CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")  # what immich's tokenizer.json holds
OPEN_CLIP_SPECIALS = ("<start_of_text>", "<end_of_text>")  # open_clip's SimpleTokenizer names
XLM_ROBERTA_SPECIALS = ("<s>", "</s>", "<pad>")  # start, end, pad: M-CLIP XLM-Roberta-*
LABSE_SPECIALS = ("[CLS]", "[SEP]", "[PAD]")  # M-CLIP LABSE-Vit-L-14 (a BERT tokenizer)

EXTRA_COLOURS: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "brown": (139, 69, 19),
}
WORDS = " ".join(
    [
        "a an the of in on at with and or photo picture image drawing square circle triangle",
        "dog cat bird car bus tree flower sky sea beach mountain snow city street house room",
        "person people man woman child face food night day sunset dark light bright small big",
    ]
).split()
PUNCTUATION = list(".,!?;:'\"-()")

OPSET = 17
IR_VERSION = 8  # loadable by onnxruntime >= 1.15


def build_tiny_clip(
    model_dir: Path,
    *,
    embed_dim: int = 16,
    image_size: int = 32,
    context_length: int = 16,
    seed: int = 0,
    family: Family = "clip",
    patch_size: int = 8,
    width: int = 32,
    depth: int = 1,
    batch_size: int | None = None,
    text_dtype: Literal["int32", "int64"] = "int32",
    special_tokens: tuple[str, str] = HF_CLIP_SPECIALS,
    mclip_tokens: tuple[str, str, str] = XLM_ROBERTA_SPECIALS,
    external_data: dict[str, ExternalData] | None = None,
) -> Path:
    """Write a random immich-layout model to `model_dir` and return it.

    `batch_size` fixes the batch dimension of both graphs (immich exports use 1); None leaves
    it dynamic. `special_tokens` are the CLIP start/end token names (ignored otherwise);
    `mclip_tokens` the M-CLIP start, end and pad tokens. `external_data` keeps the weights
    of the named graphs ("visual", "textual") outside `model.onnx`, as graphs over 2 GB do:
    "single" in `model.onnx_data`, "per_tensor" in one file per tensor.
    """
    if family not in ("clip", "siglip", "mclip"):
        raise ValueError(f"family must be 'clip', 'siglip' or 'mclip', not {family!r}")
    if embed_dim < 3 or not 1 <= patch_size <= image_size or context_length < 2:
        raise ValueError("need embed_dim >= 3, 1 <= patch_size <= image_size, context_length >= 2")
    rng = np.random.default_rng(seed)
    mean, std = (SIGLIP_MEAN, SIGLIP_STD) if family == "siglip" else (CLIP_MEAN, CLIP_STD)
    colour_proj = _orthonormal(rng, embed_dim, 3).T  # (3, D): keeps colour geometry
    text_proj = _orthonormal(rng, embed_dim, embed_dim)  # (D, D)

    model_dir = Path(model_dir)
    (model_dir / "visual").mkdir(parents=True, exist_ok=True)
    (model_dir / "textual").mkdir(parents=True, exist_ok=True)

    batch: int | str = "batch" if batch_size is None else batch_size
    external = external_data or {}
    visual = _visual_graph(rng, colour_proj, image_size, patch_size, width, depth, batch)
    _save_onnx(visual, model_dir / "visual" / "model.onnx", external.get("visual"))

    vocab, specials = _vocabulary(family, special_tokens, mclip_tokens)
    colour_rows = {
        word: _colour_feature(rgb, mean, std) @ colour_proj @ text_proj.T
        for word, rgb in {**COLOURS, **EXTRA_COLOURS}.items()
    }
    table = _embedding_table(rng, vocab, colour_rows, specials, embed_dim)
    textual = _textual_graph(
        table, text_proj, vocab[specials["pad"]], context_length, batch, text_dtype, family
    )
    _save_onnx(textual, model_dir / "textual" / "model.onnx", external.get("textual"))

    _write_tokenizer(model_dir / "textual", family, vocab, specials, context_length)
    _write_json(model_dir / "visual" / "preprocess_cfg.json", _preprocess_cfg(family, image_size))
    _write_json(
        model_dir / "config.json",
        _model_config(
            family, embed_dim, image_size, patch_size, width, depth, context_length, len(vocab)
        ),
    )
    logger.debug("wrote tiny %s model to %s", family, model_dir)
    return model_dir


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q.astype(np.float32)


def _colour_feature(
    rgb: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """What the visual colour path sees for a flat image of this colour."""
    return ((np.asarray(rgb, np.float32) / 255.0 - np.asarray(mean)) / np.asarray(std)).astype(
        np.float32
    )


def _vocabulary(
    family: Family, clip_specials: tuple[str, str], mclip_tokens: tuple[str, str, str]
) -> tuple[dict[str, int], dict]:
    # CLIP: id 0 is an ordinary token ("!") that open_clip pads with, and end-of-text has the
    # highest id. SigLIP: the pad token is a real special with its own (non-zero) id.
    # M-CLIP: the specials come first, as in XLM-RoBERTa (<s> <pad> </s> <unk>).
    words = sorted(set(WORDS) | set(COLOURS) | set(EXTRA_COLOURS))
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    tokens = ["!"] + [p for p in PUNCTUATION if p != "!"] + words
    tokens += [c for c in chars if c not in tokens] + [f"##{c}" for c in chars]
    if family == "mclip":
        start, end, pad = mclip_tokens
        specials = {"unk": "<unk>", "bos": start, "eos": end, "pad": pad}
        tokens = [start, pad, end, "<unk>"] + tokens
    elif family == "clip":
        sot, eot = clip_specials
        specials = {"unk": "<unk>", "bos": sot, "eos": eot, "pad": "!"}
        tokens += ["<unk>", sot, eot]
    else:
        specials = {"unk": "<unk>", "eos": "</s>", "pad": "<pad>"}
        tokens += ["<unk>", "<pad>", "</s>"]
    return {tok: i for i, tok in enumerate(tokens)}, specials


def _embedding_table(
    rng: np.random.Generator,
    vocab: dict[str, int],
    colour_rows: dict[str, np.ndarray],
    specials: dict[str, str],
    dim: int,
) -> np.ndarray:
    table = rng.standard_normal((len(vocab), dim)) / np.sqrt(dim)
    for word, row in colour_rows.items():
        table[vocab[word]] = row
    for key in ("bos", "eos"):  # small: start/end tokens barely move the mean, yet "" is not 0
        if key in specials:
            table[vocab[specials[key]]] *= 0.1
    return table.astype(np.float32)


def _visual_graph(
    rng: np.random.Generator,
    colour_proj: np.ndarray,
    image_size: int,
    patch: int,
    width: int,
    depth: int,
    batch: int | str,
) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(colour_proj, "colour_proj")]
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["mean_hw"]),
        helper.make_node("Flatten", ["mean_hw"], ["mean_rgb"], axis=1),
        helper.make_node("MatMul", ["mean_rgb", "colour_proj"], ["colour_part"]),
    ]
    w0 = rng.standard_normal((width, 3, patch, patch)) / np.sqrt(3 * patch * patch)
    inits += [
        numpy_helper.from_array(w0.astype(np.float32), "patch_w"),
        numpy_helper.from_array(np.zeros(width, np.float32), "patch_b"),
    ]
    nodes += [
        helper.make_node(
            "Conv",
            ["image", "patch_w", "patch_b"],
            ["h0"],
            kernel_shape=[patch, patch],
            strides=[patch, patch],
        ),
        helper.make_node("Relu", ["h0"], ["r0"]),
    ]
    for i in range(depth):
        w = rng.standard_normal((width, width, 1, 1)) * np.sqrt(2.0 / width)
        b = rng.standard_normal(width) * 0.1
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i + 1}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i + 1}"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [f"r{i}", f"w{i + 1}", f"b{i + 1}"], [f"h{i + 1}"], kernel_shape=[1, 1]
            ),
            helper.make_node("Relu", [f"h{i + 1}"], [f"r{i + 1}"]),
        ]
    head = rng.standard_normal((width, colour_proj.shape[1])) * (0.5 / np.sqrt(width))
    inits.append(numpy_helper.from_array(head.astype(np.float32), "patch_head"))
    nodes += [
        helper.make_node("GlobalAveragePool", [f"r{depth}"], ["pooled4"]),
        helper.make_node("Flatten", ["pooled4"], ["pooled"], axis=1),
        helper.make_node("MatMul", ["pooled", "patch_head"], ["patch_part"]),
        helper.make_node("Add", ["colour_part", "patch_part"], ["embedding"]),
    ]
    image = [batch, 3, image_size, image_size]
    embedding = [batch, colour_proj.shape[1]]
    return helper.make_graph(
        nodes,
        "tiny_clip_visual",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, image)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, embedding)],
        inits,
    )


def _textual_graph(
    table: np.ndarray,
    text_proj: np.ndarray,
    pad_id: int,
    context_length: int,
    batch: int | str,
    text_dtype: str,
    family: Family,
) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(table, "token_embedding"),
        numpy_helper.from_array(text_proj, "text_proj"),
        numpy_helper.from_array(np.array([1], np.int64), "seq_axis"),
        numpy_helper.from_array(np.array([2], np.int64), "feature_axis"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    mclip = family == "mclip"
    names = ["input_ids", "attention_mask"] if mclip else ["text"]
    nodes = [helper.make_node("Cast", [names[0]], ["ids"], to=TensorProto.INT64)]
    if mclip:  # the mean runs over what the mask says, whatever the ids
        nodes.append(helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT))
    else:  # the mean skips pad ids
        inits.append(numpy_helper.from_array(np.array(pad_id, np.int64), "pad_id"))
        nodes += [
            helper.make_node("Equal", ["ids", "pad_id"], ["is_pad"]),
            helper.make_node("Not", ["is_pad"], ["keep"]),
            helper.make_node("Cast", ["keep"], ["mask"], to=TensorProto.FLOAT),
        ]
    nodes += [
        helper.make_node("Gather", ["token_embedding", "ids"], ["tokens"], axis=0),
        helper.make_node("Unsqueeze", ["mask", "feature_axis"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "seq_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "seq_axis"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["denominator"]),
        helper.make_node("Div", ["summed", "denominator"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "text_proj"], ["embedding"]),
    ]
    elem = TensorProto.INT32 if text_dtype == "int32" else TensorProto.INT64
    dim = text_proj.shape[1]
    return helper.make_graph(
        nodes,
        "tiny_clip_textual",
        [helper.make_tensor_value_info(name, elem, [batch, context_length]) for name in names],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        inits,
    )


def _save_onnx(graph: Any, path: Path, external: ExternalData | None = None) -> None:
    """Save a graph; `external` keeps its weights beside it as graphs over 2 GB do: "single"
    in `model.onnx_data`, "per_tensor" one file per tensor named after it (torch.onnx's way,
    and immich's big exports). Small shape constants stay inside, as the exporters leave them."""
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="viewfinder"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    if external == "single":
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            location="model.onnx_data",
            size_threshold=64,
        )
        return
    if external == "per_tensor":
        from onnx.external_data_helper import set_external_data, write_external_data_tensors

        for tensor in model.graph.initializer:
            if len(tensor.raw_data) >= 64:
                set_external_data(tensor, location=tensor.name)
        model = write_external_data_tensors(model, str(path.parent))
    onnx.save(model, str(path))


def _write_tokenizer(
    textual: Path, family: Family, vocab: dict[str, int], specials: dict, context_length: int
) -> None:
    from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=100))
    # CLIP's own tokenizer lowercases; SigLIP's does not (open_clip canonicalises the text).
    norms = (
        [normalizers.NFC(), normalizers.Lowercase()] if family == "clip" else [normalizers.NFC()]
    )
    tokenizer.normalizer = normalizers.Sequence(norms)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if family in ("clip", "mclip"):
        sot, eot = specials["bos"], specials["eos"]
        template = f"{sot} $A {eot}"
        marks = [(sot, vocab[sot]), (eot, vocab[eot])]
    else:
        template = "$A </s>"
        marks = [("</s>", vocab["</s>"])]
    tokenizer.post_processor = processors.TemplateProcessing(single=template, special_tokens=marks)
    special_names = ["<unk>"] + [name for name, _ in marks]
    if family != "clip":
        special_names.append(specials["pad"])
    tokenizer.add_special_tokens([AddedToken(name, special=True) for name in special_names])
    tokenizer.save(str(textual / "tokenizer.json"))

    token_map = {f"{key}_token": name for key, name in specials.items()}
    if family == "clip":
        token_map["pad_token"] = specials["eos"]  # what HF's CLIP tokenizer_config says
    tokenizer_class = {"clip": "CLIPTokenizer", "siglip": "SiglipTokenizer"}.get(family)
    if family == "mclip" and specials["bos"] == "[CLS]":  # LaBSE's BERT names no bos/eos
        token_map["cls_token"] = token_map.pop("bos_token")
        token_map["sep_token"] = token_map.pop("eos_token")
        tokenizer_class = "BertTokenizer"
    elif family == "mclip":
        token_map |= {"cls_token": specials["bos"], "sep_token": specials["eos"]}
        tokenizer_class = "XLMRobertaTokenizer"
    config = {
        **token_map,
        # M-CLIP's saved tokenizers allow 512 tokens; immich cuts at config.json's 77
        "model_max_length": 512 if family == "mclip" else context_length,
        "tokenizer_class": tokenizer_class,
    }
    _write_json(textual / "tokenizer_config.json", config)
    _write_json(textual / "special_tokens_map.json", token_map)


def _preprocess_cfg(family: Family, image_size: int) -> dict[str, Any]:
    clip = family != "siglip"  # M-CLIP's image towers are OpenAI / LAION CLIP ones
    return {
        "size": [image_size, image_size],
        "mode": "RGB",
        "mean": list(CLIP_MEAN if clip else SIGLIP_MEAN),
        "std": list(CLIP_STD if clip else SIGLIP_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest" if clip else "squash",
        "fill_color": 0,
    }


def _model_config(
    family: Family,
    embed_dim: int,
    image_size: int,
    patch_size: int,
    width: int,
    depth: int,
    context_length: int,
    vocab_size: int,
) -> dict[str, Any]:
    vision = {"image_size": image_size, "patch_size": patch_size, "width": width, "layers": depth}
    text: dict[str, Any] = {
        "context_length": context_length,
        "vocab_size": vocab_size,
        "width": embed_dim,
        "layers": 0,
    }
    config: dict[str, Any] = {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text}
    if family == "siglip":
        config["init_logit_bias"] = -10
        text["hf_tokenizer_name"] = "timm/ViT-B-16-SigLIP"
        text["tokenizer_kwargs"] = {"clean": "canonicalize"}
    return config


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
