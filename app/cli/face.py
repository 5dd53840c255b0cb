"""Face subcommands: compare, embed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.exit_codes import DIFFERENT, SAME
from app.core.command_line import model_options, pipeline_from_args, progress_bar
from app.core.errors import FacesvcError, ValidationFailed

if TYPE_CHECKING:  # imported by the commands: `facesvc compare --help` starts at once
    from app.core.model.pipeline import FacePipeline, FaceResult


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    compare = sub.add_parser("compare", help="verify whether two photos show the same person")
    compare.add_argument("image_a", type=Path)
    compare.add_argument("image_b", type=Path)
    model_options(compare)
    compare.add_argument("--threshold", type=float, help="tau on the squared distance")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=run_compare)

    embed = sub.add_parser("embed", help="print the embedding of the largest face of each photo")
    embed.add_argument("images", type=Path, nargs="+")
    model_options(embed)
    embed.add_argument("--aligned", action="store_true", help="inputs are aligned crops already")
    embed.add_argument("--json", action="store_true")
    embed.set_defaults(func=run_embed)


def _largest_face(pipeline: FacePipeline, path: Path) -> FaceResult:
    # An unreadable file raises OSError: exit status 3, not 1 ("different people")
    try:
        return pipeline.analyze(path.read_bytes(), faces="largest")[0]
    except FacesvcError as exc:
        exc.detail = f"{path}: {exc.detail}"
        raise


def run_compare(args: argparse.Namespace) -> int:
    from app.core.decision.distance import is_match, squared_distance
    from app.core.decision.thresholds import Thresholds

    for path in (args.image_a, args.image_b):  # before the model loads (seconds)
        _check_readable(path)
    pipeline = pipeline_from_args(args)
    face_a = _largest_face(pipeline, args.image_a)
    face_b = _largest_face(pipeline, args.image_b)
    # No database on the command line: the backbone's built-in calibration, and any
    # threshold the caller gives (the service's allowed range guards a shared server)
    tau = Thresholds().verify(pipeline.backbone.calibration, args.threshold)
    distance = squared_distance(face_a.embedding, face_b.embedding)
    match = is_match(distance, tau)
    if args.json:
        print(
            json.dumps(
                {
                    "match": match,
                    "distance": distance,
                    "threshold": tau,
                    "model": pipeline.backbone.name,
                    "faces": [_face_json(face_a), _face_json(face_b)],
                }
            )
        )
    else:
        verdict = "same person" if match else "different people"
        print(f"{verdict}: distance {distance:.4f} {'<=' if match else '>'} threshold {tau:.4f}")
    return SAME if match else DIFFERENT


def _check_readable(path: Path) -> None:
    with path.open("rb"):  # FileNotFoundError, IsADirectoryError, PermissionError
        pass


def run_embed(args: argparse.Namespace) -> int:
    for path in args.images:
        _check_readable(path)
    pipeline = pipeline_from_args(args)
    rows = []
    for path in progress_bar(args, args.images, desc="embedding", unit="img"):
        if args.aligned:
            image = pipeline.decode(path.read_bytes())
            size = pipeline.backbone.alignment.size
            if image.shape[:2] != (size, size):
                raise ValidationFailed(
                    f"{path} is {image.shape[1]}x{image.shape[0]}, "
                    f"not the model's {size}x{size} aligned crop"
                )
            embedding = pipeline.embed_chips([image])[0]
            rows.append(
                {"file": str(path), "embedding": embedding.tolist(), "box": None, "score": None}
            )
        else:
            face = _largest_face(pipeline, path)
            rows.append(
                {"file": str(path), **_face_json(face), "embedding": face.embedding.tolist()}
            )
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            values = " ".join(f"{v:.6f}" for v in row["embedding"])
            print(f"{row['file']}\t{values}")
    return 0


def _face_json(face: FaceResult) -> dict[str, Any]:
    detection = face.detection
    return {
        "box": [round(v, 2) for v in detection.box] if detection else None,
        "score": round(detection.score, 5) if detection else None,
    }
