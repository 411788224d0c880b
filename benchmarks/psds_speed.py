"""psds_eval vs the native PSDS on a DESED-sized synthetic evaluation set.

    python benchmarks/psds_speed.py [--clips 1200] [--classes 10] [--thresholds 50] [--seed 0] [--repeats 5]
                                    [--skip-psds-eval]

Scores come from a noisy, median-filtered "model" of random DESED-like ground truth (about 2.5 events per clip,
0.3-10 s long). Both implementations get the same decoded operating points (thresholds 0.01 ... 0.99); the
native times include building the ground-truth index, psds_eval's exclude building its detection tables. Times are
medians over ``--repeats`` runs, the two implementations taking turns.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import ndimage

from datamodules.sed import DESED_CLASSES
from metrics.sed.postprocess import DESED_MEDIAN_WINDOWS, decode_thresholds, median_filter
from metrics.sed.psds import PSDS1, PSDS2, PSDS_THRESHOLDS, ReferenceSet
from metrics.sed.scores import ClipScores
from metrics.sed.toolkits import psds_eval_intersection_f1, psds_eval_psds

FRAME_HOP = 0.064
N_FRAMES = 156
# A mediocre "model": PSDS1 around 0.5 as the DCASE'24 baseline.
LOGIT_GAIN, LOGIT_BIAS, NOISE_STD, NOISE_SMOOTHING = 6.0, -1.5, 1.8, 2.5


def synthetic_desed(
    n_clips: int, n_classes: int, seed: int
) -> tuple[dict[str, ClipScores], pd.DataFrame, pd.DataFrame]:
    """Scores, ground truth and durations of a synthetic DESED-like evaluation set."""
    rng = np.random.default_rng(seed)
    if n_classes <= len(DESED_CLASSES):
        classes = tuple(DESED_CLASSES[:n_classes])
    else:
        classes = tuple(f"class_{c}" for c in range(n_classes))
    windows = (DESED_MEDIAN_WINDOWS * (n_classes // len(DESED_MEDIAN_WINDOWS) + 1))[:n_classes]
    timestamps = np.arange(N_FRAMES + 1) * FRAME_HOP
    clips, truth, durations = {}, [], []
    for i in range(n_clips):
        filename = f"synthetic_{i:05d}.wav"
        durations.append((filename, 10.0))
        target = np.zeros((N_FRAMES, n_classes))
        taken: dict[int, list[tuple[float, float]]] = {}
        for _ in range(rng.poisson(2.5)):
            c = int(rng.integers(n_classes))
            length = float(np.clip(rng.lognormal(0.5, 0.9), 0.3, 10.0))
            onset = round(float(rng.uniform(0.0, 10.0 - length)), 3)
            offset = round(onset + length, 3)
            if any(onset < off and on < offset for on, off in taken.get(c, [])):
                continue  # same-class events must not overlap
            taken.setdefault(c, []).append((onset, offset))
            truth.append((filename, onset, offset, classes[c]))
            target[int(onset / FRAME_HOP) : int(np.ceil(offset / FRAME_HOP)), c] = 1.0
        if not taken:
            truth.append((filename, np.nan, np.nan, np.nan))
        # Noise correlated over a few frames (Gaussian, sigma 2.5 frames), as a network's errors are.
        noise = ndimage.gaussian_filter1d(rng.normal(0.0, 1.0, target.shape), NOISE_SMOOTHING, axis=0)
        logits = LOGIT_GAIN * (target - 0.5) + LOGIT_BIAS + noise * NOISE_STD / noise.std()
        clips[filename[:-4]] = ClipScores(timestamps, median_filter(1 / (1 + np.exp(-logits)), windows), classes)
    ground_truth = pd.DataFrame(truth, columns=["filename", "onset", "offset", "event_label"])
    return clips, ground_truth, pd.DataFrame(durations, columns=["filename", "duration"])


def timed(functions: dict[str, Callable[[], float] | None], repeats: int) -> dict[str, tuple[float, float]]:
    """``{name: (value, median seconds)}`` over ``repeats`` calls of each function, the functions taking turns
    (a None function gives ``(nan, nan)``)."""
    names = [name for name, function in functions.items() if function is not None]
    values: dict[str, float] = {}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            values[name] = functions[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: (values[name], float(np.median(seconds[name]))) if name in values else (np.nan, np.nan)
            for name in functions}


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1200)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--thresholds", type=int, default=50, help="operating points (a grid like PSDS_THRESHOLDS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement (medians reported)")
    parser.add_argument("--skip-psds-eval", action="store_true", help="time the native implementation only")
    args = parser.parse_args(argv)

    half_step = 1 / (2 * args.thresholds)
    thresholds = (
        list(PSDS_THRESHOLDS)
        if args.thresholds == 50
        else [round(t, 4) for t in np.linspace(half_step, 1 - half_step, args.thresholds)]
    )
    clips, ground_truth, durations = synthetic_desed(args.clips, args.classes, args.seed)
    filenames = {clip_id: clip_id + ".wav" for clip_id in clips}
    decoded, decode_s = timed({"decode": lambda: decode_thresholds(clips, thresholds)}, args.repeats)["decode"]
    tables = decoded.tables(filenames)
    table_05 = decode_thresholds(clips, [0.5]).tables(filenames)[0.5]
    n_events = int(ground_truth["event_label"].notna().sum())
    print(
        f"{args.clips} clips x {args.classes} classes x {len(thresholds)} thresholds: {n_events} ground-truth events, "
        f"{len(decoded.onset)} detections over all operating points; native decoding {decode_s:.2f} s "
        f"(medians of {args.repeats} runs)"
    )

    rows = []
    for name, params in (("PSDS1", PSDS1), ("PSDS2", PSDS2), ("intersection F1 @0.5", None)):
        if params is None:
            native = lambda: ReferenceSet(ground_truth, durations).intersection_f1(table_05)  # noqa: E731
            official = lambda: psds_eval_intersection_f1(table_05, ground_truth, durations)  # noqa: E731
        else:
            native = lambda: ReferenceSet(ground_truth, durations).psds(decoded, params)  # noqa: E731
            official = lambda: psds_eval_psds(tables, ground_truth, durations, params)  # noqa: E731
        times = timed({"native": native, "official": None if args.skip_psds_eval else official}, args.repeats)
        rows.append((name, times["official"][0], times["native"][0], times["official"][1], times["native"][1]))

    header = (
        f"{'metric':<22}{'psds_eval':>12}{'native':>12}{'|diff|':>10}"
        f"{'psds_eval s':>13}{'native s':>10}{'speed-up':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, official, native, official_s, native_s in rows:
        print(
            f"{name:<22}{official:>12.6f}{native:>12.6f}{abs(official - native):>10.1e}"
            f"{official_s:>13.2f}{native_s:>10.3f}{official_s / native_s:>9.0f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
