"""`facesvc eval`: the shared PROTOCOL.md figures of the pipeline on a labelled set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.core.command_line import model_options, pipeline_from_args, shows_progress


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    evaluate = sub.add_parser("eval", help="accuracy on a labelled set (shared PROTOCOL.md)")
    evaluate.add_argument("--data", type=Path, required=True, help="<set>/<identity>/<image>")
    model_options(evaluate)
    evaluate.add_argument("--threshold", type=float, help="also report rates at this fixed tau")
    evaluate.add_argument(
        "--open-set-score",
        choices=("service", "distance"),
        default="service",
        help="section 3 scored as a fresh install of the service decides (default: the "
        "model version's built-in cohort score where it applies, its tau for the gallery "
        "size), or on the raw nearest distance",
    )
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--cache", type=Path, help="embedding cache folder")
    evaluate.add_argument("--no-cache", action="store_true")
    evaluate.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from app.lab.evaluation.dataset import load_face_set
    from app.lab.evaluation.embedding import embed_set
    from app.lab.evaluation.protocol import evaluate

    face_set = load_face_set(args.data)  # a wrong folder fails before the model loads
    pipeline = pipeline_from_args(args)
    embeddings = embed_set(
        pipeline, face_set, args.cache, use_cache=not args.no_cache, progress=shows_progress(args)
    )
    report = evaluate(
        face_set,
        embeddings,
        model=pipeline.backbone.name,
        default_tau=pipeline.backbone.calibration.tau_identify,
        threshold=args.threshold,
        open_set_rule=service_rule(pipeline.backbone) if args.open_set_score == "service" else None,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


def service_rule(backbone: Any) -> Any:
    """The 1:N rule of a fresh install (FACESVC_IDENTIFY_SCORE=auto, no stored
    calibration) for a gallery of N, as `app.core.decision.open_set_rule` makes it."""
    from app.core.decision.calibration import ActiveCalibration, from_built_in
    from app.core.decision.cohort import BuiltInCohort
    from app.core.decision.open_set_rule import OpenSetRule, rule_for

    spec = backbone.calibration.cohort
    built_in = None if spec is None else BuiltInCohort.of(spec, backbone.embedding_size)

    def at(gallery_size: int) -> OpenSetRule:
        active = ActiveCalibration(from_built_in(backbone.calibration, gallery_size), None)
        return rule_for(active, gallery_size, built_in, None)

    return at


def _print_report(report: dict[str, Any]) -> None:
    for key, value in report.items():
        if key == "failed_files":
            continue
        print(f"{key}: {json.dumps(value)}", file=sys.stdout)
