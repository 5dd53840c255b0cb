"""Learning subcommands: train-triplet, train-verifier (app/lab/learning)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.command_line import progress_bar, settings_of, shows_progress

if TYPE_CHECKING:  # pydantic-settings takes 0.4 s to import: not for `--help`
    from app.core.config import Settings


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    triplet = sub.add_parser(
        "train-triplet",
        help="train a projection head (or the backbone's last blocks) with the triplet loss",
    )
    _data_options(triplet)
    triplet.add_argument(
        "--mining", choices=["batch-hard", "semi-hard", "random"], default="batch-hard"
    )
    triplet.add_argument("--margin", type=float, default=0.2, help="alpha (default 0.2)")
    triplet.add_argument(
        "--reduction",
        choices=["mean", "sum"],
        default="mean",
        help="over a batch's mined triplets",
    )
    triplet.add_argument("--identities", type=int, default=16, help="P per batch")
    triplet.add_argument("--images", type=int, default=4, help="K per identity")
    triplet.add_argument("--epochs", type=int, default=20)
    triplet.add_argument("--lr", type=float, default=1e-3)
    triplet.add_argument("--weight-decay", type=float, default=0.0)
    triplet.add_argument("--hidden", type=int, default=0, help="residual MLP width (0: linear)")
    triplet.add_argument(
        "--train",
        choices=["head", "blocks"],
        default="head",
        help="head on cached embeddings, or the backbone's last blocks (GPU)",
    )
    triplet.add_argument("--blocks", type=int, default=2, help="last blocks retrained")
    triplet.set_defaults(func=run_train_triplet)

    verifier = sub.add_parser(
        "train-verifier",
        help="learn P(same person) from pair features; compare it with the distance",
    )
    _data_options(verifier)
    verifier.add_argument("--hidden", type=int, default=0, help="MLP width (0: logistic)")
    verifier.add_argument("--weight-decay", type=float, default=1e-3)
    verifier.add_argument(
        "--calibration-share",
        type=float,
        default=0.0,
        help="training identities set aside for Platt scaling (default 0: none)",
    )
    verifier.add_argument("--impostor-ratio", type=float, default=1.0)
    verifier.set_defaults(func=run_train_verifier)


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="<set>/<identity>/<image>")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--held-out", type=float, default=0.5, help="share of identities")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--cache", type=Path, help="embedding cache (default: eval's)")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _settings(args: argparse.Namespace) -> Settings:
    import torch

    settings = settings_of(args)
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    return settings


def _cache_dir(args: argparse.Namespace, settings: Settings) -> Path | None:
    return None if args.no_cache else args.cache or settings.cache_dir / "eval"


def run_train_triplet(args: argparse.Namespace) -> int:
    from app.lab.learning.training import EpochStats, TripletConfig
    from app.lab.learning.triplet_run import TripletRun
    from app.lab.learning.triplet_run import run_train_triplet as train

    settings = _settings(args)
    config = TripletConfig(
        mining=args.mining,
        margin=args.margin,
        reduction=args.reduction,
        identities_per_batch=args.identities,
        images_per_identity=args.images,
        epochs=args.epochs,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    run = TripletRun(
        data=args.data,
        out=args.out,
        config=config,
        target=args.train,
        blocks=args.blocks,
        hidden=args.hidden,
        held_out=args.held_out,
        split_seed=args.seed,
        cache_dir=_cache_dir(args, settings),
        progress=shows_progress(args),
    )
    bar = progress_bar(args, total=args.epochs, desc="training", unit="epoch")

    def progress(stats: EpochStats) -> None:
        bar.set_postfix(loss=f"{stats.loss:.4f}", active=f"{stats.active_fraction:.3f}")
        bar.update(1)

    with bar:
        report = train(run, settings, on_epoch=progress)
    _print(report, args.json, ("before", "identity_head", "after"))
    return 0


def run_train_verifier(args: argparse.Namespace) -> int:
    from app.lab.learning.verifier_fit import VerifierConfig
    from app.lab.learning.verifier_run import VerifierRun
    from app.lab.learning.verifier_run import run_train_verifier as train

    settings = _settings(args)
    run = VerifierRun(
        data=args.data,
        out=args.out,
        config=VerifierConfig(hidden=args.hidden, weight_decay=args.weight_decay, seed=args.seed),
        held_out=args.held_out,
        calibration_share=args.calibration_share,
        impostor_ratio=args.impostor_ratio,
        split_seed=args.seed,
        cache_dir=_cache_dir(args, settings),
        progress=shows_progress(args),
    )
    report = train(run, settings)
    _print(report, args.json, ("distance", "verifier"))
    return 0


def _print(report: dict[str, Any], as_json: bool, compared: tuple[str, ...]) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"wrote {report['file']} (version {report['version']})")
    for key, value in report.items():
        if isinstance(value, dict) and key in ("split", "identities"):
            print(f"{key}: {json.dumps(value)}")
    figures = {name: _figures_of(report, name) for name in compared}
    for name, row in figures.items():
        print(f"{name:>14}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    if "max_decile_gap" in report:
        print(
            f"reliability: max decile gap {report['max_decile_gap']:.4f}, ECE {report['ece']:.4f}"
        )


def _figures_of(report: dict[str, Any], name: str) -> dict[str, float]:
    figures = report[name]
    return {
        "AUC": figures["roc_auc"],
        "EER": figures["eer"],
        "TAR@FAR1e-3": figures["tar_at_far"]["0.001"]["tar"],
        "rank1": figures["rank1"],
        "FNIR@FPIR1e-2": figures["fnir_at_fpir"]["0.01"]["fnir"],
    }
