"""``sonolab sed-eval``: DESED metrics of a directory of per-clip score files.

    sonolab sed-eval --scores DIR --ground-truth TSV --durations TSV [--median-filter N | --median-filter-preset desed]
                     [--classes desed|FILE|A,B,C] [--engine native|psds_eval] [--json]

Score files are taken as given; the median filter runs only when asked. PSDS and intersection F1 come from the
native engine (equal to psds_eval to 1e-16, seconds instead of minutes); ``--engine psds_eval`` runs the official
toolkit as a cross-check and warns first when the set is large (:func:`metrics.sed.evaluate.psds_eval_cost_warning`).
Every score column must be a ground-truth class unless ``--classes`` names the label space; ground-truth events
must end within their clip's duration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import pandas as pd

from metrics.sed.evaluate import ENGINES, evaluate_scores, match_scores, psds_eval_cost_warning
from metrics.sed.postprocess import MEDIAN_WINDOW_PRESETS, median_filter_clips, preset_windows
from metrics.sed.psds import PSDS_THRESHOLDS
from metrics.sed.scores import (
    SEDInputError,
    check_event_extents,
    read_durations,
    read_ground_truth,
    read_score_dir,
)


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="sonolab sed-eval",
        description="PSDS1, PSDS2 (psds_eval), intersection F1 and sed_eval event/segment F1 of per-clip score files "
        "(sed_scores_eval layout: <audio id>.tsv with columns onset, offset, one per class).",
    )
    parser.add_argument("--scores", required=True, metavar="DIR", help="directory of <audio id>.tsv score files")
    parser.add_argument(
        "--ground-truth", required=True, metavar="TSV", help="strong labels: filename onset offset event_label"
    )
    parser.add_argument("--durations", required=True, metavar="TSV", help="clip durations: filename duration")
    smoothing = parser.add_mutually_exclusive_group()
    smoothing.add_argument("--median-filter", type=int, metavar="N", help="median filter of N frames on every class")
    smoothing.add_argument(
        "--median-filter-preset",
        choices=sorted(MEDIAN_WINDOW_PRESETS),
        help="published class-wise median filter windows (frames of 0.064 s)",
    )
    parser.add_argument(
        "--classes",
        metavar="SPACE",
        help="the label space: a preset (desed, maestro, dcase24), a file with one class per line, or a comma list; "
        "needed when score files have columns for classes without ground-truth events (those are not evaluated)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="native",
        help="PSDS and intersection F1 by the native implementation (default; equal to psds_eval) or by psds_eval "
        "(the official toolkit, a slow cross-check)",
    )
    parser.add_argument("--native", action="store_true", help=argparse.SUPPRESS)  # former flag: --engine native
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: psds1, psds2, f1_intersection, f1_event_macro, f1_segment_macro",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command; returns the exit status (2 for bad arguments or input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.median_filter is not None and args.median_filter < 1:
        print(f"{parser.prog}: error: --median-filter must be a positive number of frames", file=sys.stderr)
        return 2
    engine = "native" if args.native else args.engine
    try:
        scores = read_score_dir(args.scores)
        ground_truth = read_ground_truth(args.ground_truth)
        durations = read_durations(args.durations)
        check_event_extents(ground_truth, durations, args.ground_truth, args.durations)
        class_names = next(iter(scores.values())).class_names
        label_space = _label_space(args.classes)
        if label_space is not None:
            check_label_space(class_names, ground_truth, label_space, args.scores, args.ground_truth)
        evaluated = match_scores(scores, ground_truth, durations)  # also: ground-truth classes without a column
        if label_space is None:
            check_scored_classes(class_names, ground_truth, args.scores, args.ground_truth)
        if engine == "psds_eval":
            n_classes = len(next(iter(evaluated.values())).class_names)
            warning = psds_eval_cost_warning(len(PSDS_THRESHOLDS), n_classes, len(evaluated))
            if warning:
                print(f"{parser.prog}: warning: {warning}", file=sys.stderr, flush=True)
        if args.median_filter is not None:
            scores = median_filter_clips(scores, args.median_filter)
        elif args.median_filter_preset is not None:
            scores = median_filter_clips(scores, preset_windows(args.median_filter_preset, class_names))
        result = evaluate_scores(scores, ground_truth, durations, engine=engine)
    except (SEDInputError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        keys = ("psds1", "psds2", "f1_intersection", "f1_event_macro", "f1_segment_macro")
        print(json.dumps({key: getattr(result, key) for key in keys}))
        return 0
    smoothing = (
        f"{args.median_filter} frames" if args.median_filter is not None else args.median_filter_preset or "none"
    )
    rows = [
        (f"PSDS1 ({engine})", f"{result.psds1:.4f}"),
        (f"PSDS2 ({engine})", f"{result.psds2:.4f}"),
        ("intersection F1 @0.5 (macro)", f"{result.f1_intersection:.4f}"),
        ("event-based F1 @0.5 (macro / micro)", f"{result.f1_event_macro:.4f} / {result.f1_event_micro:.4f}"),
        ("segment-based F1 @0.5 (macro / micro)", f"{result.f1_segment_macro:.4f} / {result.f1_segment_micro:.4f}"),
    ]
    print(f"clips: {len(scores)}  classes: {len(class_names)}  median filter: {smoothing}")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def _label_space(classes: str | None) -> tuple[str, ...] | None:
    """``--classes``: a preset name, a class-list file or a comma-separated list."""
    if classes is None:
        return None
    from datamodules.sed.masks import CLASS_PRESETS, resolve_classes

    if classes in CLASS_PRESETS or os.path.isfile(classes):
        return resolve_classes(classes, field="--classes")
    return resolve_classes([name.strip() for name in classes.split(",")], field="--classes")


def check_scored_classes(
    score_classes: Sequence[str], ground_truth: pd.DataFrame, scores_source: str = "score files",
    source: str = "ground truth",
) -> None:
    """Without a named label space every score column must be a ground-truth class.

    Raises:
        SEDInputError: Naming the columns without ground truth and how to name the label space.
    """
    gt_classes = sorted(set(ground_truth["event_label"].dropna()))
    extra = [name for name in score_classes if name not in gt_classes]
    if extra:
        raise SEDInputError(
            f"{scores_source}: score columns {extra} are not ground-truth classes ({source} has {gt_classes}); "
            "if they belong to the label space but have no events here, name the space with --classes "
            "(a preset, a file or a comma list)"
        )


def check_label_space(
    score_classes: Sequence[str],
    ground_truth: pd.DataFrame,
    label_space: Sequence[str],
    scores_source: str = "score files",
    source: str = "ground truth",
) -> None:
    """With a named label space the score columns must be exactly that space and every ground-truth label in it.

    Raises:
        SEDInputError: Naming the offending classes, or the ground-truth line of a label outside the space.
    """
    outside = [name for name in score_classes if name not in label_space]
    if outside:
        raise SEDInputError(f"{scores_source}: score columns {outside} are not in the label space --classes "
                            f"{list(label_space)}")
    unscored = [name for name in label_space if name not in score_classes]
    if unscored:
        raise SEDInputError(f"{scores_source}: classes {unscored} of --classes have no score column")
    labels = ground_truth["event_label"]
    bad = labels.notna() & ~labels.isin(list(label_space))
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise SEDInputError(f"{source}, line {row + 2}: event label {labels.iloc[row]!r} is not in the label space "
                            f"--classes {list(label_space)}")


if __name__ == "__main__":
    sys.exit(main())
