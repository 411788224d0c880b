"""PSDS engines on synthetic evaluation sets: psds_eval, decode-then-count and the one-pass native engine.

    python benchmarks/psds_speed.py [--scores desed|audioset] [--clips N] [--classes C] [--thresholds 50]
                                    [--seed 0] [--repeats 5] [--skip-psds-eval] [--skip-decode]
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/psds_speed.py --scores audioset --clips 17000 --classes 407 \
        --skip-psds-eval --skip-decode --repeats 1      # AudioSet-strong evaluation size, one core

Score sets:

* ``desed`` (default: 1200 clips x 10 classes): a noisy, median-filtered "model" of random DESED-like ground truth
  (about 2.5 events per clip, 0.3-10 s long), 156 frames of 64 ms, all clips in memory.
* ``audioset`` (default: 2000 clips x 407 classes): AudioSet-strong-like, 250 frames of 40 ms per 10 s clip, about
  8 events per clip over Zipf-distributed classes (same-class overlaps merged, 0.04-10 s long), sparse scores (a
  class far from its events stays mostly below 0.01, with smooth false-alarm bumps; events get a bump of random
  strength, some missed, with jittered borders; a third of them also raise another class). Clips are generated on
  access (a ``Mapping``), so 17k x 407 x 250 scores never sit in memory at once.

Engines, each from the scores to the value (nothing shared between them except the ground-truth tables):

* ``psds_eval``: the official toolkit on detection tables decoded at every threshold (table building not timed).
* ``decode+count``: the former native path: ``decode_thresholds`` (every threshold's detections as arrays), then
  ``ReferenceSet.count`` of those detections.
* ``one-pass``: ``ReferenceSet.psds(scores)``: every threshold counted in one pass over the clips, a batch at a time.

PSDS1 also gets two threshold-independent rows, as sed_scores_eval and PretrainedSED compute them (every distinct
score a threshold; two passes over the scores): the PSDS and the mean over classes of each class's PSDS.

Times are medians over ``--repeats`` runs (the engines taking turns); peak MB is the evaluation's largest traced
allocation (tracemalloc, one more run per cell; numpy reports its arrays to it), so it counts the decoded
detections but not scores held by the caller. The last line gives the process's peak RSS. On a shared machine
other processes slow the runs: compare rows of one run.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from datamodules.sed import DESED_CLASSES
from metrics.sed.postprocess import DESED_MEDIAN_WINDOWS, decode_thresholds, median_filter
from metrics.sed.psds import PSDS1, PSDS2, PSDS_THRESHOLDS, ReferenceSet, psds_from_counts
from metrics.sed.psds_classwise import class_psds, threshold_independent_psds
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


# AudioSet-strong-like set: 10 s clips at 40 ms, sparse scores (see the module docstring).
AS_HOP, AS_FRAMES, AS_EVENTS_PER_CLIP, AS_BANK = 0.04, 250, 8.0, 32
AS_BIAS_MEAN, AS_BIAS_STD, AS_NOISE_STD, AS_NOISE_SMOOTHING, AS_MEDIAN_WINDOW = -7.0, 1.5, 1.6, 2.0, 9


class SparseScores(Mapping[str, ClipScores]):
    """AudioSet-strong-like frame scores, generated on access from a per-clip seed (nothing is kept).

    Every clip is a time-shifted copy of one of a few background score arrays (per-class bias plus smooth noise,
    median filtered) with a bump on each ground-truth event.
    """

    def __init__(self, events: dict[str, list[tuple[int, float, float]]], class_names: tuple[str, ...], seed: int):
        rng = np.random.default_rng(seed)
        self.events, self.class_names, self.seed = events, class_names, seed
        self.clip_ids = tuple(events)
        self.timestamps = np.arange(AS_FRAMES + 1) * AS_HOP
        bias = rng.normal(AS_BIAS_MEAN, AS_BIAS_STD, len(class_names))
        noise = ndimage.gaussian_filter1d(rng.normal(0.0, 1.0, (AS_BANK, AS_FRAMES, len(class_names))),
                                          AS_NOISE_SMOOTHING, axis=1)
        logits = bias + noise * AS_NOISE_STD / noise.std()
        self.bank = median_filter(1 / (1 + np.exp(-logits)), AS_MEDIAN_WINDOW)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.clip_ids)

    def __getitem__(self, clip_id: str) -> ClipScores:
        rng = np.random.default_rng((self.seed, int(clip_id[1:])))
        frames = (np.arange(AS_FRAMES) + rng.integers(AS_FRAMES)) % AS_FRAMES
        scores = self.bank[rng.integers(AS_BANK)][frames]
        for c, onset, offset in self.events[clip_id]:
            start, stop = np.clip([int(onset / AS_HOP), int(np.ceil(offset / AS_HOP))] + rng.integers(-3, 4, 2),
                                  0, AS_FRAMES)
            stop = max(stop, start + 1)
            columns = [c, int(rng.integers(len(self.class_names)))] if rng.random() < 0.3 else [c]
            for strength, column in zip((rng.uniform(-1.0, 8.0), rng.uniform(-3.0, 3.0)), columns):
                logits = strength + rng.normal(0.0, 1.0, min(stop, AS_FRAMES) - start)
                scores[start:stop, column] = np.maximum(scores[start:stop, column], 1 / (1 + np.exp(-logits)))
        return ClipScores(self.timestamps, scores, self.class_names)


def synthetic_audioset(n_clips: int, n_classes: int, seed: int) -> tuple[SparseScores, pd.DataFrame, pd.DataFrame]:
    """Lazily generated scores, ground truth and durations of an AudioSet-strong-like evaluation set."""
    rng = np.random.default_rng(seed)
    classes = tuple(f"class_{c:03d}" for c in range(n_classes))
    popularity = 1.0 / np.arange(1, n_classes + 1) ** 0.9
    popularity /= popularity.sum()
    events, truth, durations = {}, [], []
    for i in range(n_clips):
        clip_id = f"Y{i:06d}"
        # A few clips are shorter than their 250 frames of scores (detections past the end are not counted).
        duration = 10.0 if rng.random() < 0.97 else round(float(rng.uniform(5.0, 10.0)), 3)
        durations.append((clip_id + ".wav", duration))
        spans: dict[int, list[list[float]]] = {}
        for c in rng.choice(n_classes, size=max(1, rng.poisson(AS_EVENTS_PER_CLIP)), p=popularity):
            length = float(np.clip(rng.lognormal(0.3, 1.2), 0.04, duration))
            onset = round(float(rng.uniform(0.0, duration - length)), 3)
            spans.setdefault(int(c), []).append([onset, round(min(onset + length, duration), 3)])
        events[clip_id] = []
        for c, pieces in spans.items():
            merged: list[list[float]] = []
            for onset, offset in sorted(pieces):
                if merged and onset <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], offset)
                else:
                    merged.append([onset, offset])
            for onset, offset in merged:
                events[clip_id].append((c, onset, offset))
                truth.append((clip_id + ".wav", onset, offset, classes[c]))
    ground_truth = pd.DataFrame(truth, columns=["filename", "onset", "offset", "event_label"])
    return SparseScores(events, classes, seed), ground_truth, pd.DataFrame(durations, columns=["filename", "duration"])


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


def traced_peak_mb(function: Callable[[], float]) -> float:
    """Largest memory (MB) traced by tracemalloc above what was allocated before ``function`` ran."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        function()
        return (tracemalloc.get_traced_memory()[1] - before) / 2**20
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", choices=("desed", "audioset"), default="desed", help="synthetic set (see above)")
    parser.add_argument("--clips", type=int, default=None, help="default: 1200 (desed), 2000 (audioset)")
    parser.add_argument("--classes", type=int, default=None, help="default: 10 (desed), 407 (audioset)")
    parser.add_argument("--thresholds", type=int, default=50, help="operating points (a grid like PSDS_THRESHOLDS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement (medians reported)")
    parser.add_argument("--skip-psds-eval", action="store_true", help="leave out psds_eval (hours on large sets)")
    parser.add_argument("--skip-decode", action="store_true", help="leave out decode+count (GBs on large sets)")
    args = parser.parse_args(argv)
    audioset = args.scores == "audioset"
    n_clips = args.clips or (2000 if audioset else 1200)
    n_classes = args.classes or (407 if audioset else 10)

    half_step = 1 / (2 * args.thresholds)
    thresholds = (
        list(PSDS_THRESHOLDS)
        if args.thresholds == 50
        else [round(t, 4) for t in np.linspace(half_step, 1 - half_step, args.thresholds)]
    )
    start = time.perf_counter()
    make = synthetic_audioset if audioset else synthetic_desed
    clips, ground_truth, durations = make(n_clips, n_classes, args.seed)
    setup_s = time.perf_counter() - start
    filenames = {clip_id: clip_id + ".wav" for clip_id in clips}
    n_events = int(ground_truth["event_label"].notna().sum())
    read_s = timed({"read": lambda: float(sum(clip.scores[0, 0] for clip in clips.values()))}, args.repeats)["read"][1]
    print(
        f"{args.scores}: {n_clips} clips x {n_classes} classes x {len(thresholds)} thresholds, {n_events} ground-truth "
        f"events; set built in {setup_s:.1f} s; reading every clip's scores takes {read_s:.2f} s (in every time "
        f"below); medians of {args.repeats} runs"
    )

    def decode_count(params) -> float:
        reference = ReferenceSet(ground_truth, durations)
        counts = reference.count(decode_thresholds(clips, thresholds), params.dtc, params.gtc, params.cttc,
                                 cross_triggers=params.alpha_ct > 0)
        return psds_from_counts(counts, params)

    tables = None if args.skip_psds_eval else decode_thresholds(clips, thresholds).tables(filenames)

    def official(params) -> float:
        return psds_eval_psds(tables, ground_truth, durations, params)

    def class_mean() -> float:
        return float(np.mean(list(class_psds(ReferenceSet(ground_truth, durations), clips, PSDS1).values())))

    table_05 = None if args.skip_psds_eval else decode_thresholds(clips, [0.5]).tables(filenames)[0.5]
    cells: list[tuple[str, dict[str, Callable[[], float] | None]]] = []
    for name, params in (("PSDS1", PSDS1), ("PSDS2", PSDS2)):
        cells.append((name, {
            "psds_eval": None if args.skip_psds_eval else (lambda p=params: official(p)),
            "decode+count": None if args.skip_decode else (lambda p=params: decode_count(p)),
            "one-pass": lambda p=params: ReferenceSet(ground_truth, durations).psds(clips, p, thresholds),
        }))
    cells.append(("intersection F1 @0.5", {
        "psds_eval": None if args.skip_psds_eval else (
            lambda: psds_eval_intersection_f1(table_05, ground_truth, durations)),
        "decode+count": None if args.skip_decode else (lambda: ReferenceSet(ground_truth, durations).intersection_f1(
            decode_thresholds(clips, [0.5]).tables(filenames)[0.5])),
        "one-pass": lambda: ReferenceSet(ground_truth, durations).intersection_f1(clips),
    }))
    cells.append(("PSDS1 every score", {"one-pass": lambda: threshold_independent_psds(
        ReferenceSet(ground_truth, durations), clips, PSDS1)}))
    cells.append(("PSDS1 class mean", {"one-pass": class_mean}))

    # |diff|: against the one-pass value of the same metric.
    header = f"{'metric':<22}{'engine':<14}{'value':>10}{'|diff|':>10}{'seconds':>10}{'peak MB':>10}"
    print(header)
    print("-" * len(header))
    for name, functions in cells:
        times = timed(functions, args.repeats)
        reference_value = times["one-pass"][0]
        for engine, function in functions.items():
            if function is None:
                continue
            value, seconds = times[engine]
            peak = traced_peak_mb(function)
            diff = "" if engine == "one-pass" else f"{abs(value - reference_value):.1e}"
            print(f"{name:<22}{engine:<14}{value:>10.6f}{diff:>10}{seconds:>10.2f}{peak:>10.0f}")
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
