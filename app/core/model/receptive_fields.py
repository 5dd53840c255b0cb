"""The layers of dlib-resnet-v1 and each layer's receptive field, from its kernels,
strides and paddings.

A unit at output position i of a layer sees input pixels [i * jump + low, i * jump + high]
(per axis). A convolution or pooling with kernel k, stride s and padding p maps
(jump, low, high) of its input to (jump * s, low - p * jump, high + (k - 1 - p) * jump).
A residual block's output sees the union of its two paths (3x3 convolutions and the
identity or 2x2 average-pool skip). tests/lab/test_explain.py checks the result against
where the gradient of a unit actually reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.model.backbones import dlib_resnet


@dataclass(frozen=True)
class Field:
    """Input pixels seen by output unit i: [i * jump + low, i * jump + high]."""

    jump: int
    low: int
    high: int

    def through(self, kernel: int, stride: int, padding: int) -> Field:
        return Field(
            self.jump * stride,
            self.low - padding * self.jump,
            self.high + (kernel - 1 - padding) * self.jump,
        )

    def union(self, other: Field) -> Field:
        assert self.jump == other.jump, "paths of one block have the same stride"
        return Field(self.jump, min(self.low, other.low), max(self.high, other.high))

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def span(self, index: int) -> tuple[int, int]:
        """First and last input pixel (inclusive) seen by the unit at `index`."""
        return index * self.jump + self.low, index * self.jump + self.high


@dataclass(frozen=True)
class Layer:
    name: str
    description: str
    channels: int
    side: int  # output rows = columns for the model's square input
    field: Field


def _out_side(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


def dlib_resnet_layers() -> list[Layer]:
    size = dlib_resnet.INPUT_SIZE
    pad7 = dlib_resnet.dlib_padding(7, 2)
    field = Field(1, 0, 0).through(7, 2, pad7)
    side = _out_side(size, 7, 2, pad7)
    layers = [Layer("stem", "7x7/2 convolution + ReLU", 32, side, field)]
    field, side = field.through(3, 2, 0), _out_side(side, 3, 2, 0)
    layers.append(Layer("stem_pool", "3x3/2 max pool", 32, side, field))
    for index, plan in enumerate(dlib_resnet.block_plans()):
        stride = 2 if plan.downsample else 1
        pad = dlib_resnet.dlib_padding(3, stride)
        main = field.through(3, stride, pad).through(3, 1, 1)
        main_side = _out_side(_out_side(side, 3, stride, pad), 3, 1, 1)
        skip = field.through(2, 2, 0) if plan.downsample else field
        skip_side = _out_side(side, 2, 2, 0) if plan.downsample else side
        field, side = main.union(skip), max(main_side, skip_side)  # dlib zero-extends
        kind = "downsampling residual block" if plan.downsample else "residual block"
        layers.append(Layer(f"block{index}", kind, plan.out_channels, side, field))
    whole = Field(size, 0, size - 1)
    layers.append(Layer("embedding", "global average pool + 128-d linear", 128, 1, whole))
    return layers


def layers_of(model_name: str) -> list[Layer]:
    if model_name != dlib_resnet.MODEL_NAME:
        raise KeyError(model_name)
    return dlib_resnet_layers()
