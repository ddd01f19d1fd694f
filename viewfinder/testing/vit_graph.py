"""A CLIP model of real shape with random weights, written with `onnx.helper` (no torch).

`build_tiny_clip` makes models that are cheap to run; this one makes models that cost what
the real ones cost: open_clip's VisionTransformer (patchify conv, class token, pre-norm
residual attention blocks, class-token pooling, projection) and TextTransformer (token and
position embeddings, causally masked blocks, pooling at the end-of-text token, the highest
id, projection). With the defaults it has ViT-B/32's shapes, so its images/s and ms/query
are those of `ViT-B-32__openai`; only the vectors are meaningless.

The tokenizer, preprocessing config and file layout come from `build_tiny_clip`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .tiny_clip import IR_VERSION, OPSET, build_tiny_clip


@dataclass(frozen=True)
class VitShape:
    """Transformer sizes; the defaults are OpenAI's ViT-B/32."""

    image_size: int = 224
    patch_size: int = 32
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408
    embed_dim: int = 512
    quick_gelu: bool = True  # OpenAI's models use x * sigmoid(1.702 x)


def build_vit_clip(model_dir: Path, shape: VitShape | None = None, *, seed: int = 0) -> Path:
    """Write an immich-layout model with transformer towers of `shape` and random weights."""
    shape = shape or VitShape()
    if shape.image_size % shape.patch_size:
        raise ValueError("image_size must be a multiple of patch_size")
    if shape.vision_width % shape.vision_heads or shape.text_width % shape.text_heads:
        raise ValueError("widths must be multiples of their head counts")
    model_dir = build_tiny_clip(
        Path(model_dir),
        embed_dim=shape.embed_dim,
        image_size=shape.image_size,
        patch_size=shape.patch_size,
        context_length=shape.context_length,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    _save(_visual(_Builder(rng), shape), model_dir / "visual" / "model.onnx")
    _save(_textual(_Builder(rng), shape), model_dir / "textual" / "model.onnx")
    config = {
        "embed_dim": shape.embed_dim,
        "quick_gelu": shape.quick_gelu,
        "vision_cfg": {
            "image_size": shape.image_size,
            "layers": shape.vision_layers,
            "width": shape.vision_width,
            "patch_size": shape.patch_size,
        },
        "text_cfg": {
            "context_length": shape.context_length,
            "vocab_size": shape.vocab_size,
            "width": shape.text_width,
            "heads": shape.text_heads,
            "layers": shape.text_layers,
        },
    }
    (model_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    return model_dir


class _Builder:
    """Accumulates nodes and initialisers; each helper returns its output's name."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *dims: int, std: float = 0.02, hint: str = "w") -> str:
        return self.const((self.rng.standard_normal(dims, dtype=np.float32) * std), hint)

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int, bias: bool = True) -> str:
        y = self.op("MatMul", [x, self.weight(n_in, n_out, std=n_in**-0.5)])
        return self.op("Add", [y, self.const(np.zeros(n_out, np.float32), "b")]) if bias else y

    def layer_norm(self, x: str, width: int) -> str:
        scale = self.const(np.ones(width, np.float32), "ln_g")
        bias = self.const(np.zeros(width, np.float32), "ln_b")
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=1e-5)

    def gelu(self, x: str, quick: bool) -> str:
        if quick:
            k = self.const(np.array(1.702, np.float32))
            return self.op("Mul", [x, self.op("Sigmoid", [self.op("Mul", [x, k])])])
        erf = self.op("Erf", [self.op("Div", [x, self.const(np.array(math.sqrt(2), np.float32))])])
        half = self.op("Mul", [x, self.const(np.array(0.5, np.float32))])
        return self.op("Mul", [half, self.op("Add", [erf, self.const(np.array(1, np.float32))])])

    def block(self, x: str, width: int, heads: int, quick: bool, mask: str | None) -> str:
        """Pre-norm residual block: x + attn(ln(x)), then x + mlp(ln(x)); x is (B, T, W)."""
        head = width // heads
        qkv = self.linear(self.layer_norm(x, width), width, 3 * width)
        qkv = self.op("Reshape", [qkv, self.const(np.array([0, 0, 3, heads, head]))])
        qkv = self.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # (3, B, H, T, D)
        q, k, v = (self.op("Gather", [qkv, self.const(np.array(i))], axis=0) for i in range(3))
        scores = self.op("MatMul", [q, self.op("Transpose", [k], perm=[0, 1, 3, 2])])
        scores = self.op("Mul", [scores, self.const(np.array(head**-0.5, np.float32))])
        if mask is not None:
            scores = self.op("Add", [scores, mask])
        attn = self.op("MatMul", [self.op("Softmax", [scores], axis=-1), v])
        attn = self.op("Transpose", [attn], perm=[0, 2, 1, 3])
        attn = self.op("Reshape", [attn, self.const(np.array([0, 0, width]))])
        x = self.op("Add", [x, self.linear(attn, width, width)])
        hidden = self.gelu(self.linear(self.layer_norm(x, width), width, 4 * width), quick)
        return self.op("Add", [x, self.linear(hidden, 4 * width, width)])


def _visual(b: _Builder, s: VitShape) -> Any:
    from onnx import TensorProto, helper

    w, grid = s.vision_width, s.image_size // s.patch_size
    patches = b.op(
        "Conv",
        ["image", b.weight(w, 3, s.patch_size, s.patch_size)],
        kernel_shape=[s.patch_size, s.patch_size],
        strides=[s.patch_size, s.patch_size],
    )
    tokens = b.op("Reshape", [patches, b.const(np.array([0, w, grid * grid]))])
    tokens = b.op("Transpose", [tokens], perm=[0, 2, 1])  # (B, grid*grid, W)
    batch = b.op("Gather", [b.op("Shape", [tokens]), b.const(np.array([0]))])
    cls_shape = b.op("Concat", [batch, b.const(np.array([1, w]))], axis=0)
    cls = b.op("Expand", [b.weight(1, 1, w), cls_shape])
    x = b.op("Concat", [cls, tokens], axis=1)
    x = b.op("Add", [x, b.weight(1, grid * grid + 1, w, std=0.01)])
    x = b.layer_norm(x, w)
    for _ in range(s.vision_layers):
        x = b.block(x, w, s.vision_heads, s.quick_gelu, mask=None)
    pooled = b.op("Gather", [x, b.const(np.array(0))], axis=1)  # the class token: (B, W)
    out = b.op("MatMul", [b.layer_norm(pooled, w), b.weight(w, s.embed_dim, std=w**-0.5)])
    return helper.make_graph(
        b.nodes,
        "vit_clip_visual",
        [
            helper.make_tensor_value_info(
                "image", TensorProto.FLOAT, ["batch", 3, s.image_size, s.image_size]
            )
        ],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", s.embed_dim])],
        b.inits,
    )


def _textual(b: _Builder, s: VitShape) -> Any:
    from onnx import TensorProto, helper

    w, n = s.text_width, s.context_length
    ids = b.op("Cast", ["text"], to=TensorProto.INT64)
    x = b.op("Gather", [b.weight(s.vocab_size, w), ids], axis=0)
    x = b.op("Add", [x, b.weight(n, w, std=0.01)])
    mask = b.const(np.triu(np.full((n, n), -np.inf, np.float32), 1), "causal")
    for _ in range(s.text_layers):
        x = b.block(x, w, s.text_heads, s.quick_gelu, mask=mask)
    x = b.layer_norm(x, w)
    # Pool at the end-of-text token, which has the highest id in CLIP's vocabulary.
    eot = b.op("ArgMax", [ids], axis=-1, keepdims=1)  # (B, 1)
    index = b.op("Unsqueeze", [eot, b.const(np.array([2]))])  # (B, 1, 1)
    width_shape = b.op("Concat", [b.op("Shape", [eot]), b.const(np.array([w]))], axis=0)
    index = b.op("Expand", [index, width_shape])  # (B, 1, W)
    pooled = b.op("GatherElements", [x, index], axis=1)
    pooled = b.op("Squeeze", [pooled, b.const(np.array([1]))])
    out = b.op("MatMul", [pooled, b.weight(w, s.embed_dim, std=w**-0.5)])
    return helper.make_graph(
        b.nodes,
        "vit_clip_textual",
        [helper.make_tensor_value_info("text", TensorProto.INT32, ["batch", n])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", s.embed_dim])],
        b.inits,
    )


def _save(graph: Any, path: Path) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="viewfinder"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
