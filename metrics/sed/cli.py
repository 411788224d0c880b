"""``sonolab sed-eval``: DESED metrics of a directory of per-clip score files.

    sonolab sed-eval --scores DIR --ground-truth TSV --durations TSV [--median-filter N | --median-filter-preset desed]
                     [--native] [--json]

Score files are taken as given; the median filter runs only when asked.
"""
from __future__ import annotations

import argparse
import json
import sys

from metrics.sed.evaluate import evaluate_scores
from metrics.sed.postprocess import MEDIAN_WINDOW_PRESETS, median_filter_clips, preset_windows
from metrics.sed.scores import SEDInputError, read_durations, read_ground_truth, read_score_dir


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
        "--native",
        action="store_true",
        help="PSDS and intersection F1 by the native implementation (same values, faster)",
    )
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
    try:
        scores = read_score_dir(args.scores)
        ground_truth = read_ground_truth(args.ground_truth)
        durations = read_durations(args.durations)
        class_names = next(iter(scores.values())).class_names
        if args.median_filter is not None:
            scores = median_filter_clips(scores, args.median_filter)
        elif args.median_filter_preset is not None:
            scores = median_filter_clips(scores, preset_windows(args.median_filter_preset, class_names))
        result = evaluate_scores(scores, ground_truth, durations, engine="native" if args.native else "psds_eval")
    except (SEDInputError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        keys = ("psds1", "psds2", "f1_intersection", "f1_event_macro", "f1_segment_macro")
        print(json.dumps({key: getattr(result, key) for key in keys}))
        return 0
    engine = "native" if args.native else "psds_eval"
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


if __name__ == "__main__":
    sys.exit(main())
