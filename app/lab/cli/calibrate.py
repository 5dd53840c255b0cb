"""`facesvc calibrate`: thresholds from a labelled set, stored for the service."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# numpy and the lab's modules are imported by the command: `--help` starts at once.


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    from app.core.command_line import model_options

    parser = sub.add_parser(
        "calibrate",
        help="choose tau for a target FAR (1:1) and FPIR (1:N) and store it for the service",
    )
    parser.add_argument("--data", type=Path, required=True, help="<set>/<identity>/<image>")
    parser.add_argument("--far", type=float, default=1e-3, help="target FAR per impostor pair")
    parser.add_argument("--fpir", type=float, default=1e-2, help="target FPIR for 1:N")
    parser.add_argument(
        "--gallery-size",
        type=int,
        help="people enrolled, for the 1:N tau (default: half the set's identities "
        "with >= 2 images, as PROTOCOL.md section 3)",
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        help="share of identities held out (seeded): tau is chosen on the rest and "
        "measured on them",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the identity split")
    parser.add_argument(
        "--gallery-model",
        choices=("independent", "weibull"),
        default="independent",
        help="how FPIR grows with the gallery size (see docs/learning-calibration.md)",
    )
    parser.add_argument(
        "--fixed-gallery",
        action="store_true",
        help="keep the 1:N tau fixed instead of re-deriving it from the live gallery size",
    )
    parser.add_argument(
        "--study-normalisation",
        action="store_true",
        help="with --holdout: also measure open-set score normalisations on raw and L2 "
        "embeddings, their gallery-size behaviour and one- vs three-photo enrolment "
        "(docs/open-set.md)",
    )
    parser.add_argument(
        "--study-splits",
        type=int,
        default=5,
        help="enrolment seeds the open-set study averages over (PROTOCOL.md section 3)",
    )
    parser.add_argument(
        "--save-cohort",
        type=Path,
        metavar="FILE.npy",
        help="write the embeddings of the one-photo people (never enrolled; with --holdout "
        "those of the calibration part, as the study used) as the cohort for "
        "FACESVC_IDENTIFY_SCORE=cohort",
    )
    parser.add_argument(
        "--save-built-in-cohort",
        type=Path,
        metavar="PREFIX",
        help="write PREFIX.npz (the cohort mixture) and PREFIX.json (k, the gallery model "
        "of cohort scores) from the calibration part alone, as a model version ships them "
        "(docs/open-set.md)",
    )
    parser.add_argument("--no-save", action="store_true", help="report only, store nothing")
    parser.add_argument("--json", action="store_true")
    model_options(parser)
    parser.add_argument("--cache", type=Path, help="embedding cache folder (as facesvc eval)")
    parser.add_argument("--no-cache", action="store_true")
    parser.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from app.core.command_line import pipeline_from_args, shows_progress
    from app.core.errors import ValidationFailed
    from app.lab.calibration.calibrate import Request, calibrate
    from app.lab.evaluation.dataset import load_face_set
    from app.lab.evaluation.embedding import embed_set

    if not 0.0 < args.far < 1.0 or not 0.0 < args.fpir < 1.0:
        raise ValidationFailed("--far and --fpir must be between 0 and 1")
    if args.study_splits < 1:
        raise ValidationFailed("--study-splits must be at least 1")
    if args.gallery_size is not None and args.gallery_size < 1:
        raise ValidationFailed("--gallery-size must be at least 1")
    face_set = load_face_set(args.data)  # a wrong folder fails before the model loads
    pipeline = pipeline_from_args(args)
    embeddings = embed_set(
        pipeline, face_set, args.cache, use_cache=not args.no_cache, progress=shows_progress(args)
    )
    request = Request(
        far=args.far,
        fpir=args.fpir,
        gallery_size=args.gallery_size,
        holdout=args.holdout,
        seed=args.seed,
        model_kind=args.gallery_model,
        study_normalisation=args.study_normalisation,
        study_splits=args.study_splits,
    )
    try:
        result = calibrate(face_set, embeddings, request)
    except ValueError as error:
        raise ValidationFailed(f"{args.data}: {error}") from error
    result["model"] = pipeline.backbone.name
    result["model_version"] = pipeline.model[1]
    result["saved_id"] = None if args.no_save else _save(result, pipeline.model, args)
    if args.save_cohort is not None:
        import numpy as np

        from app.lab.calibration.data import split_identities
        from app.lab.calibration.normalise import cohort_faces

        # The cohort the study's tau was measured with: the calibration part's people.
        part = split_identities(face_set, args.holdout, args.seed)[0] if args.holdout else face_set
        cohort = cohort_faces(part, embeddings)
        np.save(args.save_cohort, cohort.astype(np.float32), allow_pickle=False)
        result["cohort_file"] = str(args.save_cohort)
        result["cohort_size"] = int(cohort.shape[0])
    if args.save_built_in_cohort is not None:
        result["built_in_cohort"] = _save_built_in_cohort(face_set, embeddings, args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_summary(result)
    return 0


def _save_built_in_cohort(
    face_set: Any, embeddings: Any, args: argparse.Namespace
) -> dict[str, Any]:
    from app.lab.calibration.data import split_identities
    from app.lab.calibration.open_set_study import built_in_cohort_artefacts
    from app.lab.calibration.synthetic_cohort import built_in_spec

    part = split_identities(face_set, args.holdout, args.seed)[0]
    mixture, k, model = built_in_cohort_artefacts(part, embeddings, args.study_splits, args.fpir)
    prefix: Path = args.save_built_in_cohort
    mixture.save(prefix.with_suffix(".npz"))
    source = (
        f"facesvc calibrate --data {args.data} --holdout {args.holdout} --seed {args.seed} "
        f"--study-splits {args.study_splits} --fpir {args.fpir} --save-built-in-cohort PREFIX"
    )
    spec = built_in_spec(prefix.with_suffix(".npz").name, k, model, args.fpir, source)
    prefix.with_suffix(".json").write_text(json.dumps(spec, indent=1) + "\n")
    return {"files": [str(prefix.with_suffix(s)) for s in (".npz", ".json")], "k": k}


def _source(args: argparse.Namespace, result: dict[str, Any]) -> str:
    options = f"--far {args.far} --fpir {args.fpir} --gallery-size {result['gallery_size']}"
    if args.holdout:
        options += f" --holdout {args.holdout} --seed {args.seed}"
    return (
        f"facesvc calibrate --data {result['set']} {options}: "
        f"{result['identities']} identities, {result['images']} images"
    )


def _save(result: dict[str, Any], model: tuple[str, str], args: argparse.Namespace) -> int:
    from app.core.command_line import settings_of, with_session
    from app.core.store.repos import calibrations as repository
    from app.core.store.rows.calibrations import StoredCalibration

    report = {k: v for k, v in result.items() if k not in ("normalisation", "open_set_study")}
    row = StoredCalibration(
        model_name=model[0],
        model_version=model[1],
        source=_source(args, result)[:500],
        tau_verify=result["tau"],
        far_target=result["far_target"],
        tau_identify=result["tau_identify"],
        fpir_target=result["fpir_target"],
        gallery_size=result["gallery_size"],
        follow_gallery=not args.fixed_gallery,
        report=report,
    )
    saved: StoredCalibration = with_session(
        settings_of(args), lambda session: repository.add(session, row)
    )
    return saved.id


def _rate(figure: dict[str, float], digits: int = 4) -> str:
    return f"{figure['value']:.{digits}g} [{figure['low']:.{digits}g}, {figure['high']:.{digits}g}]"


def _print_summary(result: dict[str, Any]) -> None:
    verification, identification = result["verification"], result["identification"]
    print(
        f"calibrated {result['model']} on {result['set']}: "
        f"{result['identities']} identities, {result['images']} images (95% intervals)"
    )
    print(
        f"1:1  tau {result['tau']:.4f} for FAR {result['far_target']:g}: "
        f"FAR {_rate(verification['far'])}, TAR {_rate(verification['tar'])}"
    )
    print(
        f"1:N  tau {result['tau_identify']:.4f} for FPIR {result['fpir_target']:g} with "
        f"{result['gallery_size']} enrolled: FPIR {_rate(identification['fpir'])}, "
        f"FNIR {_rate(identification['fnir'])} (model expects {result['expected_fnir']:.4g})"
    )
    held = result.get("held_out")
    if held:
        print(
            f"held out ({held['identities']} identities): "
            f"FAR {_rate(held['verification']['far'])}, "
            f"TAR {_rate(held['verification']['tar'])}, "
            f"FPIR {_rate(held['identification']['fpir'])}, "
            f"FNIR {_rate(held['identification']['fnir'])}"
        )
    if result.get("normalisation"):
        study = result["normalisation"]
        for method, figures in study["methods"].items():
            print(
                f"score {method:<7} FNIR at FPIR {study['fpir']:g} on held-out identities: "
                f"{figures['fnir_held_out']:.4f} (parameter {figures['parameter']:g}, "
                f"tau {figures['tau_calibration']:.4f})"
            )
    if result.get("open_set_study"):
        from app.lab.calibration.open_set_report import tables

        print("\n".join(["", *tables(result["open_set_study"])]))
    if result["saved_id"] is not None:
        print(
            f"saved as calibration {result['saved_id']}: the service now uses it for "
            f"{result['model']} {result['model_version']}"
        )
