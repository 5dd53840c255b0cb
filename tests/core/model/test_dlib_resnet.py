"""dlib-resnet-v1: our parser of dlib's model file and our torch port, checked against dlib."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dlib
import numpy as np
import pytest
import torch

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.backbones import dlib_resnet
from app.core.model.backbones.dlib_format import DlibReader, LayerRecord, parse_network
from app.core.model.backbones.dlib_resnet import (
    DlibResNet,
    DlibResNetBackbone,
    add_zero_extended,
    block_plans,
    find_model_file,
    load_dlib_resnet,
    network_spec,
)
from app.core.model.options import BackboneOptions

CHIPS = Path(__file__).parents[2] / "data" / "chips"
TOLERANCE = 1e-5  # per element, against dlib's own output


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return find_model_file().read_bytes()


@pytest.fixture(scope="module")
def records(model_bytes: bytes) -> list[LayerRecord]:
    return parse_network(model_bytes, network_spec())


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> DlibResNetBackbone:
    settings = Settings(cache_dir=tmp_path_factory.mktemp("cache"), device="cpu")
    return load_dlib_resnet(BackboneOptions.of(settings))


@pytest.fixture(scope="module")
def dlib_net() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(find_model_file()))


def dlib_descriptor(net: dlib.face_recognition_model_v1, chip: np.ndarray) -> np.ndarray:
    # The overload taking one aligned 150x150 chip: no detection, no jitter.
    return np.array(net.compute_face_descriptor(chip, num_jitters=0), dtype=np.float64)


def random_chips(count: int, seed: int = 1234) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 150, 150, 3), dtype=np.uint8)


def real_chips() -> np.ndarray:
    from PIL import Image

    paths = sorted(CHIPS.glob("*.png"))
    assert len(paths) >= 3, "tests/data/chips/*.png missing (see make_chips.py there)"
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


# --- the serialisation format ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"\x01\x00", 0), (b"\x01\x96", 150), (b"\x02\x00\x01", 256), (b"\x81\x11", -17)],
)
def test_packed_integers(raw: bytes, value: int) -> None:
    assert DlibReader(raw).read_int() == value


def test_float_details_and_bools() -> None:
    # 0.04 as dlib writes it: mantissa 0xa3d70a, exponent -28; then inf; then '1', '0'.
    reader = DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x01\x00\x02\x00\x7d" + b"10")
    assert reader.read_float() == pytest.approx(0.04, rel=1e-7)
    assert reader.read_float() == float("inf")
    assert reader.read_bool() is True
    assert reader.read_bool() is False
    assert reader.at_end()


def test_bad_primitives_fail_clearly() -> None:
    with pytest.raises(ValueError, match="control byte"):
        DlibReader(b"\x09" + bytes(9)).read_int()
    with pytest.raises(ValueError, match="bool"):
        DlibReader(b"\x01").read_bool()
    with pytest.raises(ValueError, match="truncated"):
        DlibReader(b"\x04\x01").read_int()


def test_parser_reads_the_known_architecture(records: list[LayerRecord]) -> None:
    kinds = Counter(record.kind for record in records)
    blocks, downs = len(block_plans()), sum(plan.downsample for plan in block_plans())
    assert blocks == 14 and downs == 4
    assert kinds == {
        "input_rgb_image_sized": 1,
        "con": 1 + 2 * blocks,
        "affine": 1 + 2 * blocks,
        "relu": 1 + 2 * blocks,
        "max_pool": 1,
        "tag": blocks + downs,
        "skip": downs,
        "avg_pool": downs + 1,
        "add_prev": blocks,
        "fc": 1,
        "loss_metric": 1,
    }
    first, last = records[0], records[-1]
    assert first.hyper["nr"] == first.hyper["nc"] == 150
    assert first.hyper["avg_red"] == pytest.approx(122.782)
    assert last.hyper["margin"] == pytest.approx(0.04)
    assert last.hyper["dist_thresh"] == pytest.approx(0.6)


def test_parser_weight_shapes(records: list[LayerRecord]) -> None:
    convs = [record for record in records if record.kind == "con"]
    expected = [(32, 3, 7, 7)]
    for plan in block_plans():
        expected.append((plan.out_channels, plan.in_channels, 3, 3))
        expected.append((plan.out_channels, plan.out_channels, 3, 3))
    assert [conv.weights["filters"].shape for conv in convs] == expected
    assert [conv.weights["biases"].shape for conv in convs] == [(e[0],) for e in expected]
    # dlib pads k/2 only for stride 1
    assert [(conv.hyper["stride_y"], conv.hyper["padding_y"]) for conv in convs[:3]] == [
        (2, 0),
        (1, 1),
        (1, 1),
    ]
    assert all(c.hyper["padding_y"] == (c.hyper["stride_y"] == 1) for c in convs[1:])
    affines = [record for record in records if record.kind == "affine"]
    assert [affine.weights["gamma"].shape for affine in affines] == [(e[0], 1, 1) for e in expected]
    (fc,) = [record for record in records if record.kind == "fc"]
    assert fc.weights["weights"].shape == (256, 128)  # input-major, no bias
    assert fc.hyper["has_bias"] is False
    # every stored weight lands in exactly one parameter of the torch network
    stored = sum(w.size for record in records for w in record.weights.values())
    assert stored == sum(p.numel() for p in DlibResNet().parameters())


def test_unknown_layer_fails_clearly(model_bytes: bytes) -> None:
    broken = model_bytes.replace(b"\x05relu_", b"\x05relx_", 1)
    with pytest.raises(ValueError, match="unknown layer 'relx_'"):
        parse_network(broken, network_spec())


def test_version_mismatch_fails_clearly(model_bytes: bytes) -> None:
    broken = b"\x01\x07" + model_bytes[2:]  # the loss layer's version
    with pytest.raises(ValueError, match="add_loss_layer version 7"):
        parse_network(broken, network_spec())


def test_structure_mismatch_fails_clearly(model_bytes: bytes) -> None:
    spec = network_spec()
    wrong = type(spec)(spec.input_kind, list(spec.layers)[1:], spec.loss_kind)
    with pytest.raises(ValueError):
        parse_network(model_bytes, wrong)


def test_trailing_bytes_fail(model_bytes: bytes) -> None:
    with pytest.raises(ValueError, match="trailing"):
        parse_network(model_bytes + b"\x00", network_spec())


# --- the network -------------------------------------------------------------------------


def test_add_prev_zero_extends_at_the_end() -> None:
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 2, 2), 10.0)
    out = add_zero_extended(b, a)
    assert out.shape == (1, 2, 3, 3)
    assert torch.equal(out[0, 0, :2, :2], torch.full((2, 2), 11.0))
    assert torch.equal(out[0, 0, 2, :], torch.ones(3)) and torch.equal(out[0, 1], torch.ones(3, 3))


def test_parity_with_dlib_on_random_chips(
    backbone: DlibResNetBackbone, dlib_net: dlib.face_recognition_model_v1
) -> None:
    chips = random_chips(4)
    ours = backbone.embed(chips)
    assert ours.shape == (4, 128) and ours.dtype == np.float32
    for chip, embedding in zip(chips, ours, strict=True):
        assert np.abs(embedding - dlib_descriptor(dlib_net, chip)).max() <= TOLERANCE


def test_parity_with_dlib_on_real_chips(
    backbone: DlibResNetBackbone, dlib_net: dlib.face_recognition_model_v1
) -> None:
    chips = real_chips()
    ours = backbone.embed(chips)
    for chip, embedding in zip(chips, ours, strict=True):
        reference = dlib_descriptor(dlib_net, chip)
        assert np.abs(embedding - reference).max() <= TOLERANCE
    # same person closer than different people, by dlib's 0.6 rule
    distance = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    assert distance[0, 1] < 0.6 < min(distance[0, 2], distance[1, 2])


def test_folded_affines_match_dlibs_layers(backbone: DlibResNetBackbone) -> None:
    # The backbone folds each affine layer into its convolution; the plain network doesn't.
    plain = dlib_resnet.convert_model_file(find_model_file()).eval()
    chips = random_chips(3, seed=99)
    with torch.inference_mode():
        expected = plain(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(backbone.embed(chips) - expected).max() <= TOLERANCE


def test_batch_equals_singles(backbone: DlibResNetBackbone) -> None:
    chips = np.concatenate([real_chips(), random_chips(5, seed=7)])
    batched = backbone.embed(chips)
    singles = np.concatenate([backbone.embed([chip]) for chip in chips])
    assert np.abs(batched - singles).max() <= TOLERANCE
    assert np.array_equal(backbone.embed(list(chips)), batched)


def test_embed_rejects_bad_input_and_accepts_empty(backbone: DlibResNetBackbone) -> None:
    assert backbone.embed([]).shape == (0, 128)
    with pytest.raises(ValueError, match="150, 150, 3"):
        backbone.embed(np.zeros((1, 160, 160, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        backbone.embed(np.zeros((1, 150, 150, 3), np.float32))


def test_backbone_attributes(backbone: DlibResNetBackbone) -> None:
    sha = dlib_resnet.file_sha256(find_model_file())
    assert backbone.name == "dlib-resnet-v1"
    assert backbone.version == "1+" + sha[:12]
    assert (backbone.embedding_size, backbone.input_size, backbone.normalized) == (128, 150, False)
    assert backbone.device == torch.device("cpu")
    # open-set 1:N must be stricter than 1:1: a stranger gets one chance per enrolled person
    assert 0 < backbone.calibration.tau_identify < backbone.calibration.tau_verify
    assert backbone.alignment.size == 150


# --- conversion cache --------------------------------------------------------------------


def test_converted_weights_are_cached_and_reused(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, device="cpu")
    first = load_dlib_resnet(BackboneOptions.of(settings))
    (cached,) = (tmp_path / "weights").glob("*.safetensors")
    assert first.version[2:] in cached.name and not first.loaded_from_cache
    written = cached.stat().st_mtime_ns

    second = load_dlib_resnet(BackboneOptions.of(settings))
    assert second.loaded_from_cache
    assert cached.stat().st_mtime_ns == written  # read, not rewritten
    assert list((tmp_path / "weights").iterdir()) == [cached]  # no temp files left
    chips = real_chips()
    assert np.array_equal(first.embed(chips), second.embed(chips))


def test_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, device="cpu")
    load_dlib_resnet(BackboneOptions.of(settings))
    (cached,) = (tmp_path / "weights").glob("*.safetensors")
    cached.write_bytes(b"not a safetensors file")
    rebuilt = load_dlib_resnet(BackboneOptions.of(settings))
    assert not rebuilt.loaded_from_cache
    assert load_dlib_resnet(BackboneOptions.of(settings)).loaded_from_cache


def test_missing_model_file_is_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlib_resnet, "MODEL_PACKAGES", ("no_such_package_here",))
    with pytest.raises(ModelUnavailable, match="face_recognition_models"):
        find_model_file()
