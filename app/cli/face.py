"""Face subcommands: compare, embed, eval."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.errors import FacesvcError
from app.evaluation.dataset import FaceSet
from app.face.distance import is_match, squared_distance
from app.face.pipeline import FacePipeline, FaceResult


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    compare = sub.add_parser("compare", help="verify whether two photos show the same person")
    compare.add_argument("image_a", type=Path)
    compare.add_argument("image_b", type=Path)
    _model_options(compare)
    compare.add_argument("--threshold", type=float, help="tau on the squared distance")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=run_compare)

    embed = sub.add_parser("embed", help="print the embedding of the largest face of each photo")
    embed.add_argument("images", type=Path, nargs="+")
    _model_options(embed)
    embed.add_argument("--aligned", action="store_true", help="inputs are aligned crops already")
    embed.add_argument("--json", action="store_true")
    embed.set_defaults(func=run_embed)

    evaluate = sub.add_parser("eval", help="accuracy on a labelled set (shared PROTOCOL.md)")
    evaluate.add_argument("--data", type=Path, required=True, help="<set>/<identity>/<image>")
    _model_options(evaluate)
    evaluate.add_argument("--threshold", type=float, help="also report rates at this fixed tau")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--cache", type=Path, help="embedding cache folder")
    evaluate.add_argument("--no-cache", action="store_true")
    evaluate.set_defaults(func=run_eval)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="embedding backbone (default: settings)")
    parser.add_argument("--device", help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument(
        "--model-file",
        type=Path,
        help="ONNX file for arcface-onnx (sets FACESVC_ARCFACE_ONNX; implies that model)",
    )


def _pipeline(args: argparse.Namespace) -> FacePipeline:
    settings = Settings()
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    model = args.model
    if args.model_file:
        settings = settings.model_copy(update={"arcface_onnx": args.model_file})
        model = model or "arcface-onnx"
    return FacePipeline.load(settings, model)


def _largest_face(pipeline: FacePipeline, path: Path) -> FaceResult:
    try:
        return pipeline.analyze(path.read_bytes(), faces="largest")[0]
    except FacesvcError as exc:
        exc.detail = f"{path}: {exc.detail}"
        raise
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from exc


def run_compare(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    face_a = _largest_face(pipeline, args.image_a)
    face_b = _largest_face(pipeline, args.image_b)
    tau = args.threshold if args.threshold is not None else pipeline.backbone.calibration.tau_verify
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
    return 0 if match else 1


def run_embed(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    rows = []
    for path in args.images:
        if args.aligned:
            image = pipeline.decode(path.read_bytes())
            size = pipeline.backbone.alignment.size
            if image.shape[:2] != (size, size):
                raise SystemExit(
                    f"error: {path} is {image.shape[1]}x{image.shape[0]}, "
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


def run_eval(args: argparse.Namespace) -> int:
    from app.evaluation.dataset import load_face_set
    from app.evaluation.protocol import evaluate

    pipeline = _pipeline(args)
    face_set = load_face_set(args.data)
    embeddings = embed_set(pipeline, face_set, args.cache, use_cache=not args.no_cache)
    report = evaluate(
        face_set,
        embeddings,
        model=pipeline.backbone.name,
        default_tau=pipeline.backbone.calibration.tau_identify,
        threshold=args.threshold,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


def embed_set(
    pipeline: FacePipeline, face_set: FaceSet, cache_folder: Path | None, use_cache: bool = True
) -> dict[Path, np.ndarray | None]:
    """Every image's embedding (None: no face), through the evaluation cache that
    `facesvc eval` fills (default folder: <cache_dir>/eval)."""
    from app.evaluation.cache import EmbeddingCache, embed_face_set

    cache = None
    if use_cache:
        folder = cache_folder or pipeline.settings.cache_dir / "eval"
        cache = EmbeddingCache(folder, _cache_key(pipeline, face_set.name))

    def embed_one(path: Path) -> np.ndarray | None:
        try:
            return pipeline.analyze(path.read_bytes(), faces="largest")[0].embedding
        except FacesvcError:
            return None  # the protocol counts it as a failed image

    return embed_face_set(face_set, embed_one, cache, progress=True)


def _cache_key(pipeline: FacePipeline, set_name: str) -> str:
    return f"{set_name}-{pipeline.backbone.name}-{pipeline.fingerprint()}"


def _print_report(report: dict[str, Any]) -> None:
    for key, value in report.items():
        if key == "failed_files":
            continue
        print(f"{key}: {json.dumps(value)}", file=sys.stdout)
