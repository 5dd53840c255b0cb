"""MTCNN as batched tensor work over many images of any sizes.

facenet-pytorch's networks and weights, and its algorithm step for step, but:
- every stage runs once for the whole batch: P-Net once per pyramid scale over all
  images (padded bottom/right to a common canvas, so coordinates are unchanged), R-Net
  and O-Net once over every candidate of every image;
- resampling is exact area averaging (what facenet-pytorch's `interpolate(mode="area")`
  computes) read off one summed-area table per batch, so the pyramid levels and all the
  24/48 px crops are gathered in one op each instead of a Python loop per box;
- NMS runs on the device, grouped by image.
P-Net's max-pooling sees the padding only where its ceil-mode window would have been
partial; the padding is masked to -1e4 there, so the padded batch gives the same numbers
as one image alone.
"""
# Over 400 lines: the three stages and their tensor helpers all work on one padded batch's layout.

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from torchvision.ops import nms

FACTOR = 0.709  # facenet-pytorch's pyramid step
# How much padding (as a fraction of the images' own pixels) a shared canvas may add
# before images are split into size buckets. On the CPU padding costs its full compute
# (a mixed-size batch of 32 ran 3x slower padded than bucketed, docs/performance.md), so
# only same-size images share a canvas; a GPU has compute to spare but pays a round trip
# per bucket and scale, so it pads everything into one canvas.
BUCKET_SLACK = {"cpu": 0.0, "cuda": math.inf}
CPU_CHUNK, GPU_CHUNK = 256, 16384  # R-Net/O-Net crops per forward pass
_MASKED = -1e4  # below any real P-Net activation: max-pooling never picks it


@dataclass(frozen=True)
class Faces:
    """One image's faces as facenet-pytorch's `detect` returns them: largest box first."""

    boxes: npt.NDArray[np.float32]  # (n, 4) x1, y1, x2, y2
    scores: npt.NDArray[np.float32]  # (n,)
    points: npt.NDArray[np.float32]  # (n, 5, 2)


@dataclass
class _Bucket:
    """Images padded into one canvas, as a summed-area table on the device."""

    members: list[int]  # indices into the whole batch
    sat: torch.Tensor  # (b, H + 1, W + 1, 3) integer running sums
    sizes: torch.Tensor  # (b, 2) int64 height, width
    host_sizes: list[tuple[int, int]]  # the same, on the host (no device round trips)


class _ChannelsLastPReLU(torch.nn.Module):
    """PReLU computed on the (pixels, channels) view of a channels-last tensor: the same
    numbers, and on the CPU several times faster than torch's PReLU in that layout
    (which took 40% of the detection time)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
            return torch.nn.functional.prelu(x, self.weight)
        nhwc = x.permute(0, 2, 3, 1)
        flat = torch.nn.functional.prelu(nhwc.reshape(-1, x.shape[1]), self.weight)
        return flat.view(nhwc.shape).permute(0, 3, 1, 2)


@dataclass
class _Batch:
    buckets: list[_Bucket]
    bucket_of: torch.Tensor  # (n,) each image's bucket
    local_of: torch.Tensor  # (n,) each image's row in its bucket


class BatchedMTCNN:
    def __init__(
        self, device: torch.device, min_face_size: int = 20, bucket_slack: float | None = None
    ) -> None:
        self.device = device
        self.min_face_size = min_face_size
        self.bucket_slack = (
            BUCKET_SLACK.get(device.type, 0.0) if bucket_slack is None else bucket_slack
        )
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net in (self.pnet, self.rnet, self.onet):
            net.to(device).eval()
            # The crops arrive channels-last (gathered as NHWC); on the CPU torch's
            # convolutions and pooling are faster in that layout (bench/detect.py).
            net.to(memory_format=torch.channels_last)
            for name, module in list(net.named_children()):
                if isinstance(module, torch.nn.PReLU):
                    setattr(net, name, _ChannelsLastPReLU(module.weight))

    @torch.inference_mode()
    def detect(
        self, images: Sequence[npt.NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Faces]:
        """(h, w, 3) uint8 RGB images -> each image's faces."""
        if not images:
            return []
        groups = bucket_by_size(images, self.bucket_slack)
        buckets = [self._bucket(images, members) for members in groups]
        bucket_of, local_of = np.zeros(len(images), np.int64), np.zeros(len(images), np.int64)
        for number, members in enumerate(groups):
            bucket_of[members] = number
            local_of[members] = np.arange(len(members))
        batch = _Batch(
            buckets,
            torch.from_numpy(bucket_of).to(self.device),
            torch.from_numpy(local_of).to(self.device),
        )
        boxes, image_ids = self._propose(buckets, thresholds[0])
        boxes, image_ids = self._refine(batch, boxes, image_ids, thresholds[1])
        boxes, points, image_ids = self._output(batch, boxes, image_ids, thresholds[2])
        return _split(boxes, points, image_ids, len(images))

    def _bucket(self, images: Sequence[npt.NDArray[np.uint8]], members: list[int]) -> _Bucket:
        height = max(images[i].shape[0] for i in members)
        width = max(images[i].shape[1] for i in members)
        canvas = np.zeros((len(members), height, width, 3), np.uint8)
        for row, i in enumerate(members):
            h, w = images[i].shape[:2]
            canvas[row, :h, :w] = images[i]
        pixels = torch.from_numpy(canvas).to(self.device)
        # int32 sums are exact up to 2^31 / 255 = 8.4 million pixels per image.
        dtype = torch.int32 if height * width < 2**31 // 255 else torch.int64
        sat = pixels.to(dtype).cumsum(1).cumsum(2)
        sat = torch.nn.functional.pad(sat, (0, 0, 1, 0, 1, 0))
        host_sizes = [(images[i].shape[0], images[i].shape[1]) for i in members]
        sizes = torch.tensor(host_sizes, device=self.device)
        return _Bucket(members, sat, sizes, host_sizes)

    def _propose(self, buckets: list[_Bucket], threshold: float) -> tuple[torch.Tensor, ...]:
        """P-Net over the pyramid: (n, 9) boxes x1, y1, x2, y2, score, reg * 4, and the
        image index of each."""
        found, found_ids = [], []
        m = 12.0 / self.min_face_size
        for bucket in buckets:
            sides = [min(h, w) * m for h, w in bucket.host_sizes]
            scale = m
            while max(sides) >= 12:  # the same float steps as facenet-pytorch's loop
                rows = [i for i, side in enumerate(sides) if side >= 12]
                boxes, ids = self._pnet_scale(bucket, rows, scale, threshold)
                # NMS within each scale and image
                keep = grouped_nms(boxes[:, :4], boxes[:, 4], ids, 0.5)
                found.append(boxes[keep])
                found_ids.append(torch.as_tensor(bucket.members, device=self.device)[ids[keep]])
                scale *= FACTOR
                sides = [s * FACTOR for s in sides]
        if not found:  # every image under 12 px at the first scale
            return torch.zeros((0, 5), device=self.device), torch.zeros(
                0, dtype=torch.long, device=self.device
            )
        boxes, image_ids = torch.cat(found), torch.cat(found_ids)
        keep = grouped_nms(boxes[:, :4], boxes[:, 4], image_ids, 0.7)
        boxes, image_ids = boxes[keep], image_ids[keep]
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        calibrated = torch.stack(
            [
                boxes[:, 0] + boxes[:, 5] * width,
                boxes[:, 1] + boxes[:, 6] * height,
                boxes[:, 2] + boxes[:, 7] * width,
                boxes[:, 3] + boxes[:, 8] * height,
                boxes[:, 4],
            ],
            dim=1,
        )
        return _square(calibrated), image_ids

    def _pnet_scale(
        self, bucket: _Bucket, rows: list[int], scale: float, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pyramid level of the images in `rows`: candidate boxes, bucket-local ids."""
        host = [(int(h * scale + 1), int(w * scale + 1)) for h, w in bucket.host_sizes]
        host = [host[i] for i in rows]
        index = torch.tensor(rows, device=self.device)
        sizes = bucket.sizes[index]
        out_sizes = torch.tensor(host, device=self.device)
        largest = (max(h for h, _ in host), max(w for _, w in host))
        zero = torch.zeros_like(sizes[:, 0])
        level = area_resample(
            bucket.sat, index, zero, sizes[:, 0], zero, sizes[:, 1], out_sizes, largest
        )
        padded = any(size != largest for size in host)
        reg, probs = self._pnet(level, out_sizes, padded)
        # Cells of P-Net's output that lie inside each image.
        valid_h = (out_sizes[:, 0] - 2 + 1) // 2 - 4
        valid_w = (out_sizes[:, 1] - 2 + 1) // 2 - 4
        inside = _inside(valid_h, valid_w, probs.shape[1], probs.shape[2])
        hits = (probs >= threshold) & inside
        local, y, x = hits.nonzero(as_tuple=True)
        score = probs[local, y, x]
        offsets = reg.permute(0, 2, 3, 1)[local, y, x]
        corner = torch.stack([x, y], dim=1).to(reg.dtype)
        q1 = ((2 * corner + 1) / scale).floor()
        q2 = ((2 * corner + 12) / scale).floor()
        boxes = torch.cat([q1, q2, score[:, None], offsets], dim=1)
        return boxes, index[local]

    def _pnet(
        self, level: torch.Tensor, out_sizes: torch.Tensor, padded: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net with its first pooling masked outside each image."""
        net = self.pnet
        x = net.prelu1(net.conv1(level))
        if padded:
            inside = _inside(out_sizes[:, 0] - 2, out_sizes[:, 1] - 2, x.shape[2], x.shape[3])
            x = x.masked_fill(~inside[:, None], _MASKED)
        x = net.pool1(x)
        x = net.prelu3(net.conv3(net.prelu2(net.conv2(x))))
        probs = net.softmax4_1(net.conv4_1(x))[:, 1]
        return net.conv4_2(x), probs

    def _chunked(self, net: torch.nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`net` over the crops in slices: on the CPU R-Net's activations for thousands
        of crops outgrow the caches (batches of 32 images ran 10% slower per image than
        8 before this); a GPU takes them whole."""
        size = CPU_CHUNK if crops.device.type == "cpu" else GPU_CHUNK
        outputs = [net(crops[i : i + size]) for i in range(0, len(crops), size)]
        return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))

    def _refine(
        self, batch: _Batch, boxes: torch.Tensor, image_ids: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """R-Net on 24 px crops of every candidate."""
        if len(boxes) == 0:
            return boxes, image_ids
        crops, usable = _crops(batch, boxes, image_ids, 24)
        reg, probs = self._chunked(self.rnet, crops)
        score = probs[:, 1]
        passed = (score > threshold) & usable
        boxes = torch.cat([boxes[passed, :4], score[passed, None]], dim=1)
        reg, image_ids = reg[passed], image_ids[passed]
        keep = grouped_nms(boxes[:, :4], boxes[:, 4], image_ids, 0.7)
        return _square(_regress(boxes[keep], reg[keep])), image_ids[keep]

    def _output(
        self, batch: _Batch, boxes: torch.Tensor, image_ids: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """O-Net on 48 px crops: final boxes, scores and landmarks."""
        if len(boxes) == 0:
            return boxes, boxes.new_zeros((0, 5, 2)), image_ids
        crops, usable = _crops(batch, boxes, image_ids, 48)
        reg, marks, probs = self._chunked(self.onet, crops)
        score = probs[:, 1]
        passed = (score > threshold) & usable
        boxes = torch.cat([boxes[passed, :4], score[passed, None]], dim=1)
        reg, marks, image_ids = reg[passed], marks[passed], image_ids[passed]
        width = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        height = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack(
            [width * marks[:, :5] + boxes[:, :1] - 1, height * marks[:, 5:] + boxes[:, 1:2] - 1],
            dim=2,
        )
        boxes = _regress(boxes, reg)
        keep = grouped_nms_min(boxes[:, :4], boxes[:, 4], image_ids, 0.7)
        return boxes[keep], points[keep], image_ids[keep]


def _crops(
    batch: _Batch, boxes: torch.Tensor, image_ids: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box's crop, clipped to its image (facenet-pytorch's `pad`) and
    area-resampled to size x size, normalised; and whether the crop is non-empty."""
    corners = boxes[:, :4].trunc().long()
    parts = []
    for number, bucket in enumerate(batch.buckets):
        mine = (batch.bucket_of[image_ids] == number).nonzero(as_tuple=True)[0]
        if len(batch.buckets) == 1:
            mine = torch.arange(len(boxes), device=boxes.device)
        if len(mine) == 0:
            continue
        local = batch.local_of[image_ids[mine]]
        height, width = bucket.sizes[local, 0], bucket.sizes[local, 1]
        x1, y1, x2, y2 = corners[mine].unbind(1)
        x0 = x1.clamp(min=1) - 1
        y0 = y1.clamp(min=1) - 1
        x2 = torch.minimum(x2, width)
        y2 = torch.minimum(y2, height)
        ok = (x2 > x0) & (y2 > y0)
        # empty crops are read as one pixel and dropped after the network
        x2, y2 = torch.where(ok, x2, x0 + 1), torch.where(ok, y2, y0 + 1)
        fixed = torch.full((len(mine), 2), size, device=boxes.device)
        crops = area_resample(bucket.sat, local, y0, y2, x0, x2, fixed, (size, size))
        parts.append((mine, crops, ok))
    if len(parts) == 1 and len(parts[0][0]) == len(boxes):
        return parts[0][1], parts[0][2]
    crops = boxes.new_zeros((len(boxes), 3, size, size))
    usable = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for mine, part, ok in parts:
        crops[mine] = part
        usable[mine] = ok
    crops = crops.contiguous(memory_format=torch.channels_last)
    return crops, usable


def bucket_by_size(images: Sequence[npt.NDArray[np.uint8]], slack: float) -> list[list[int]]:
    """Groups of images to pad together: sorted by area, a group grows while its canvas
    holds at most `slack` times more padding than image pixels (inf: one canvas, 0:
    only same-size images share one)."""
    order = sorted(range(len(images)), key=lambda i: images[i].shape[0] * images[i].shape[1])
    groups: list[list[int]] = []
    for i in order:
        if groups:
            group = [*groups[-1], i]
            height = max(images[j].shape[0] for j in group)
            width = max(images[j].shape[1] for j in group)
            pixels = sum(images[j].shape[0] * images[j].shape[1] for j in group)
            if height * width * len(group) <= (1 + slack) * pixels:
                groups[-1] = group
                continue
        groups.append([i])
    return groups


def area_resample(
    sat: torch.Tensor,
    index: torch.Tensor | None,
    y0: torch.Tensor,
    y1: torch.Tensor,
    x0: torch.Tensor,
    x1: torch.Tensor,
    out_sizes: torch.Tensor,
    largest: tuple[int, int],
) -> torch.Tensor:
    """Regions [y0, y1) x [x0, x1) of the images behind `sat` (row `index[k]`, or row k
    when None), each averaged over adaptive bins into out_sizes[k] = (h, w) pixels, as
    torch's adaptive_avg_pool2d does; padded to `largest` (the largest size), normalised as MTCNN
    wants, returned (n, 3, H, W) in channels-last layout."""
    rows_from, rows_to = _bins(y0, y1, out_sizes[:, 0], largest[0])
    cols_from, cols_to = _bins(x0, x1, out_sizes[:, 1], largest[1])
    image = torch.arange(len(y0), device=sat.device) if index is None else index
    # One flat gather per corner: far faster than 3-way advanced indexing on the CPU.
    _, height, width, _ = sat.shape
    flat = sat.view(-1, 3)
    base = (image * (height * width))[:, None, None]

    def corner(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        at = base + (rows * width)[:, :, None] + cols[:, None, :]
        return flat.index_select(0, at.view(-1)).view(*at.shape, 3)

    total = (
        corner(rows_to, cols_to)
        - corner(rows_from, cols_to)
        - corner(rows_to, cols_from)
        + corner(rows_from, cols_from)
    )
    # sum / kh / kw, in that order, as torch's CPU kernel rounds it
    kh = (rows_to - rows_from).float()[:, :, None, None]
    kw = (cols_to - cols_from).float()[:, None, :, None]
    mean = total.float() / kh / kw
    return ((mean - 127.5) * 0.0078125).permute(0, 3, 1, 2)


def _bins(
    start: torch.Tensor, stop: torch.Tensor, out: torch.Tensor, largest: int
) -> tuple[torch.Tensor, ...]:
    """Adaptive pooling's bins over [start, stop) into `out` cells: cell i covers
    [floor(i * n / out), ceil((i + 1) * n / out)); cells past `out` get a dummy bin."""
    length = (stop - start)[:, None]
    cells = out[:, None]
    i = torch.arange(largest, device=out.device)[None]
    lo = (i * length) // cells
    hi = -((-(i + 1) * length) // cells)
    real = i < cells
    lo = torch.where(real, lo, 0) + start[:, None]
    hi = torch.where(real, hi, 1) + start[:, None]
    return lo, hi


def _inside(heights: torch.Tensor, widths: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(n, rows, cols) mask of the cells within each (height, width)."""
    r = torch.arange(rows, device=heights.device)[None, :, None]
    c = torch.arange(cols, device=heights.device)[None, None, :]
    return (r < heights[:, None, None]) & (c < widths[:, None, None])


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's `rerec`: the square around each box's centre."""
    boxes = boxes.clone()
    height = boxes[:, 3] - boxes[:, 1]
    width = boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(width, height)
    boxes[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's `bbreg`."""
    boxes = boxes.clone()
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = boxes[:, :4] + reg[:, :4] * torch.stack([width, height, width, height], 1)
    return boxes


def grouped_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou: float
) -> torch.Tensor:
    """NMS within each group (image). torchvision's batched_nms shifts groups apart by
    max + 1, which lets boxes with negative corners meet another image's; shifting by
    the span keeps them apart, and group 0 (one image alone) is not moved at all."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    return nms(boxes + (groups.to(boxes.dtype) * span)[:, None], scores, iou)


def grouped_nms_min(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Greedy NMS by intersection over the smaller box (+1 pixel areas), facenet-pytorch's
    last step, on the device: the greedy answer is the unique fixed point of "kept if no
    kept, better-scored box of its image overlaps it", reached in a few matrix steps."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Best first; among equal scores (saturated probabilities tie often) the later box
    # first, as facenet-pytorch's numpy NMS takes the last of a stable ascending sort.
    order = scores.sort(stable=True).indices.flip(0)
    b, g = boxes[order], groups[order]
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    width = (
        torch.minimum(b[:, None, 2], b[None, :, 2])
        - torch.maximum(b[:, None, 0], b[None, :, 0])
        + 1
    ).clamp(min=0)
    height = (
        torch.minimum(b[:, None, 3], b[None, :, 3])
        - torch.maximum(b[:, None, 1], b[None, :, 1])
        + 1
    ).clamp(min=0)
    overlap = width * height / torch.minimum(area[:, None], area[None, :])
    n = len(b)
    earlier = torch.ones(n, n, dtype=torch.bool, device=b.device).triu(1)
    suppresses = (overlap > threshold) & (g[:, None] == g[None, :]) & earlier
    keep = torch.ones(n, dtype=torch.bool, device=b.device)
    while True:
        update = ~(suppresses & keep[:, None]).any(0)
        if bool((update == keep).all()):
            break
        keep = update
    return order[keep]


def _split(
    boxes: torch.Tensor, points: torch.Tensor, image_ids: torch.Tensor, count: int
) -> list[Faces]:
    """Per image, largest box first (facenet-pytorch's `select_largest` order)."""
    boxes_np = boxes.float().cpu().numpy()
    points_np = points.float().cpu().numpy()
    ids = image_ids.cpu().numpy()
    faces = []
    for i in range(count):
        mine = np.flatnonzero(ids == i)
        b = boxes_np[mine]
        order = np.argsort((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[::-1]
        faces.append(Faces(b[order, :4], b[order, 4], points_np[mine][order]))
    return faces
