"""A reader of dlib's binary serialisation of a DNN (`dlib::serialize(net, out)`).

Written from dlib's source as the specification (dlib/serialize.h, dlib/float_details.h,
dlib/dnn/core.h, layers.h, input.h, loss.h, tensor.h); no dlib code is used or needed.

dlib's format is not self-describing: the C++ network *type* drives deserialisation, and
some wrappers (tag and skip layers) write nothing but a version number. So, like dlib, this
reader walks the stream guided by the expected structure, a list of `Node`s in forward
order, and checks every version and layer name it meets on the way.

Stream layout of `loss<L1<L2<...<Ln<input>>>>>` (L1 outermost): the loss layer writes its
version and details first; every wrapper then writes its version *before* its subnetwork
and its layer details *after* it. The stream therefore holds all wrapper versions from the
top down, then the input layer, then the layer details from the bottom up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Hyper = Mapping[str, float | int | bool]

WRAPPER_KINDS = ("tag", "skip")  # add_tag_layer / add_skip_layer: no details of their own


@dataclass(frozen=True)
class Node:
    """One layer of the expected structure.

    kind: a layer-details kind ("con", "affine", "relu", "max_pool", "avg_pool",
    "add_prev", "fc") or a wrapper kind ("tag", "skip"). tag: the tag id a tag layer
    defines or a skip / add_prev layer reads. dlib does not store it, so it comes from here.
    """

    kind: str
    tag: int | None = None


@dataclass(frozen=True)
class NetSpec:
    input_kind: str  # e.g. "input_rgb_image_sized"
    layers: Sequence[Node]  # forward order: the layer on top of the input first
    loss_kind: str  # e.g. "loss_metric"


@dataclass(frozen=True)
class LayerRecord:
    """One parsed layer: its hyperparameters and its weights as numpy arrays."""

    kind: str
    tag: int | None = None
    hyper: Hyper = field(default_factory=dict)
    weights: Mapping[str, FloatArray] = field(default_factory=dict)


class DlibReader:
    """A cursor over dlib-serialised bytes with one method per primitive type."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    def fail(self, message: str) -> ValueError:
        return ValueError(f"dlib model file, byte {self.offset}: {message}")

    def at_end(self) -> bool:
        return self.offset == len(self._data)

    def take(self, count: int) -> memoryview:
        if count < 0 or self.offset + count > len(self._data):
            raise self.fail(f"truncated: wanted {count} bytes, {self.remaining()} left")
        chunk = self._data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def remaining(self) -> int:
        return len(self._data) - self.offset

    def read_int(self, *, signed: bool = True) -> int:
        """serialize.h's packed integer: a control byte, then that many little-endian bytes.

        Control byte: bit 7 is the sign (signed types only), the low nibble the byte count.
        """
        control = self.take(1)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        if size > 8 or (negative and not signed):
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if negative else value

    def read_uint(self) -> int:
        return self.read_int(signed=False)

    def read_bool(self) -> bool:
        """bool is one ASCII character, '1' or '0'."""
        char = self.take(1)[0]
        if char not in (ord("0"), ord("1")):
            raise self.fail(f"bad bool byte 0x{char:02x}")
        return char == ord("1")

    def read_float(self) -> float:
        """float_details: value = mantissa * 2**exponent, both packed integers.

        Exponents 32000-32002 stand for +inf, -inf and NaN. (dlib's older ASCII float
        format is not supported: it never occurs in DNN model files.)
        """
        if self.remaining() and self._data[self.offset] & 0x70:
            raise self.fail("float in dlib's old ASCII format, not supported")
        mantissa = self.read_int()
        exponent = self.read_int()
        special = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        if exponent in special:
            return special[exponent]
        return float(np.ldexp(float(mantissa), exponent))

    def read_string(self) -> str:
        length = self.read_uint()
        return bytes(self.take(length)).decode("latin-1")

    def expect_version(self, allowed: Sequence[int], what: str) -> int:
        version = self.read_int()
        if version not in allowed:
            raise self.fail(f"{what} version {version}, expected one of {list(allowed)}")
        return version

    def read_tensor(self) -> FloatArray:
        """resizable_tensor v2: version, num_samples, k, nr, nc, then raw float32 LE."""
        self.expect_version([2], "tensor")
        shape = tuple(self.read_int() for _ in range(4))
        if any(dim < 0 for dim in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape))
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """alias_tensor: only a shape (num_samples, k, nr, nc) into a params tensor."""
        self.expect_version([1], "alias_tensor")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc


# ---------------------------------------------------------------------------------------
# Layer details, one reader per version string. Each returns (kind, hyper, weights).

Details = tuple[str, dict[str, float | int | bool], dict[str, FloatArray]]


def _slice_params(
    reader: DlibReader, params: FloatArray, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, FloatArray]:
    """Cut the flat params tensor into the named views its alias tensors describe."""
    flat = params.reshape(-1)
    needed = sum(int(np.prod(shape)) for shape in shapes.values())
    if needed != flat.size:
        raise reader.fail(f"params hold {flat.size} values, alias tensors need {needed}")
    views, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        views[name] = flat[start : start + size].reshape(shape)
        start += size
    return views


def _read_con(reader: DlibReader, version: str) -> Details:
    params = reader.read_tensor()
    hyper: dict[str, float | int | bool] = {
        "num_filters": reader.read_int(),
        "nr": reader.read_int(),
        "nc": reader.read_int(),
        "stride_y": reader.read_int(),
        "stride_x": reader.read_int(),
        "padding_y": reader.read_int(),
        "padding_x": reader.read_int(),
    }
    filters = reader.read_alias_tensor()
    biases = reader.read_alias_tensor()
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        hyper[name] = reader.read_float()
    hyper["use_bias"] = reader.read_bool() if version == "con_5" else True
    shapes: dict[str, tuple[int, ...]] = {"filters": filters}
    if hyper["use_bias"]:
        shapes["biases"] = (biases[1],)
    return "con", hyper, _slice_params(reader, params, shapes)


def _read_affine(reader: DlibReader, version: str) -> Details:
    params = reader.read_tensor()
    gamma = reader.read_alias_tensor()
    beta = reader.read_alias_tensor()
    hyper: dict[str, float | int | bool] = {"mode": reader.read_int()}  # 0: CONV, 1: FC
    hyper["disabled"] = reader.read_bool() if version == "affine_2" else False
    weights = _slice_params(reader, params, {"gamma": gamma[1:], "beta": beta[1:]})
    return "affine", hyper, weights


def _read_fc(reader: DlibReader, version: str) -> Details:
    hyper: dict[str, float | int | bool] = {
        "num_outputs": reader.read_uint(),
        "num_inputs": reader.read_uint(),
    }
    params = reader.read_tensor()
    weights = reader.read_alias_tensor()
    biases = reader.read_alias_tensor()
    hyper["bias_mode"] = reader.read_int()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        hyper[name] = reader.read_float()
    use_bias = reader.read_bool() if version == "fc_3" else True
    has_bias = hyper["bias_mode"] == 0 and use_bias
    hyper["has_bias"] = has_bias
    # Stored input-major: (num_inputs, num_outputs), the transpose of torch's Linear.
    shapes: dict[str, tuple[int, ...]] = {"weights": (weights[0], weights[1])}
    if has_bias:
        shapes["biases"] = (biases[1],)
    return "fc", hyper, _slice_params(reader, params, shapes)


def _read_pool(kind: str) -> Callable[[DlibReader, str], Details]:
    def read(reader: DlibReader, version: str) -> Details:
        names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return kind, {name: reader.read_int() for name in names}, {}

    return read


def _read_nothing(kind: str) -> Callable[[DlibReader, str], Details]:
    def read(reader: DlibReader, version: str) -> Details:
        return kind, {}, {}

    return read


def _read_input_rgb_image_sized(reader: DlibReader, version: str) -> Details:
    hyper: dict[str, float | int | bool] = {
        "avg_red": reader.read_float(),
        "avg_green": reader.read_float(),
        "avg_blue": reader.read_float(),
        "nr": reader.read_uint(),
        "nc": reader.read_uint(),
    }
    return "input_rgb_image_sized", hyper, {}


def _read_loss_metric(reader: DlibReader, version: str) -> Details:
    return "loss_metric", {"margin": reader.read_float(), "dist_thresh": reader.read_float()}, {}


DETAIL_READERS: dict[str, Callable[[DlibReader, str], Details]] = {
    "con_4": _read_con,
    "con_5": _read_con,
    "affine_": _read_affine,
    "affine_2": _read_affine,
    "fc_2": _read_fc,
    "fc_3": _read_fc,
    "relu_": _read_nothing("relu"),
    "add_prev_": _read_nothing("add_prev"),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "input_rgb_image_sized": _read_input_rgb_image_sized,
    "loss_metric_2": _read_loss_metric,
}


def read_details(reader: DlibReader, expected_kind: str) -> Details:
    """One layer's details: a version string naming the layer type, then its fields."""
    start = reader.offset
    version = reader.read_string()
    read = DETAIL_READERS.get(version)
    if read is None:
        reader.offset = start
        raise reader.fail(f"unknown layer {version!r} where a {expected_kind!r} layer belongs")
    kind, hyper, weights = read(reader, version)
    if kind != expected_kind:
        reader.offset = start
        raise reader.fail(f"found layer {version!r} where a {expected_kind!r} layer belongs")
    return kind, hyper, weights


# ---------------------------------------------------------------------------------------
# The nested structure.

# add_layer versions: over another layer 1 (2 adds params_grad); directly over the input
# layer 2 (3 adds sample_expansion_factor).
_ADD_LAYER_VERSIONS = (1, 2)
_INPUT_ADD_LAYER_VERSIONS = (2, 3)


def _skip_layer_state(reader: DlibReader, tensors: int) -> None:
    """The bools and scratch tensors add_layer saves after its details; unused here."""
    for _ in range(3):  # setup_called, gradient_input_is_stale, output/gradient disabled
        reader.read_bool()
    for _ in range(tensors):  # x_grad, cached_output, then params_grad or grad_final
        reader.read_tensor()


def parse_network(data: bytes, spec: NetSpec) -> list[LayerRecord]:
    """Parse a serialised `loss<...<input>>` network laid out as `spec` describes.

    Returns one record per layer in forward order: the input layer first, then the
    layers of `spec.layers`, then the loss layer. Raises ValueError on anything else.
    """
    if not spec.layers or spec.layers[0].kind in WRAPPER_KINDS:
        raise ValueError("the layer right on top of the input must be a computational layer")
    reader = DlibReader(data)
    reader.expect_version([1], "add_loss_layer")
    loss = _record(read_details(reader, spec.loss_kind))

    indexed = list(enumerate(spec.layers))
    top_down_versions = [_read_wrapper_version(reader, node, i == 0) for i, node in indexed[::-1]]
    records = [_record(read_details(reader, spec.input_kind))]
    for (i, node), version in zip(indexed, top_down_versions[::-1], strict=True):
        records.append(_read_layer_body(reader, node, version, over_input=i == 0))
    records.append(loss)
    if not reader.at_end():
        raise reader.fail(f"{reader.remaining()} unexpected trailing bytes")
    return records


def _read_wrapper_version(reader: DlibReader, node: Node, over_input: bool) -> int:
    if node.kind in WRAPPER_KINDS:
        return reader.expect_version([1], f"add_{node.kind}_layer")
    allowed = _INPUT_ADD_LAYER_VERSIONS if over_input else _ADD_LAYER_VERSIONS
    return reader.expect_version(allowed, f"add_layer<{node.kind}>")


def _read_layer_body(reader: DlibReader, node: Node, version: int, over_input: bool) -> LayerRecord:
    if node.kind in WRAPPER_KINDS:
        return LayerRecord(node.kind, node.tag)  # tag and skip layers store nothing more
    details = read_details(reader, node.kind)
    if over_input:
        _skip_layer_state(reader, tensors=3)  # x_grad, cached_output, grad_final
        if version == 3:
            reader.read_uint()  # sample_expansion_factor
    else:
        _skip_layer_state(reader, tensors=3 if version == 2 else 2)
    return _record(details, node.tag)


def _record(details: Details, tag: int | None = None) -> LayerRecord:
    kind, hyper, weights = details
    return LayerRecord(kind, tag, hyper, weights)
