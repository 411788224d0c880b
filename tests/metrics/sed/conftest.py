"""Seeded synthetic SED evaluation sets shared by the metrics/sed tests."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from metrics.sed.postprocess import median_filter
from metrics.sed.scores import ClipScores

FRAME_HOP = 0.064
N_FRAMES = 156

SyntheticSet = tuple[dict[str, ClipScores], pd.DataFrame, pd.DataFrame]


def synthetic_set(
    seed: int,
    n_clips: int = 24,
    class_names: Sequence[str] = ("Cat", "Dog", "Speech", "Frying"),
    confusion: float = 0.3,
) -> SyntheticSet:
    """Scores that roughly follow random ground truth, with noise and some class confusion.

    Returns:
        ``(scores keyed by audio id, ground truth, durations)``; about one clip in ten has no event and one in
        five is shorter than 10 s.
    """
    rng = np.random.default_rng(seed)
    n_classes = len(class_names)
    timestamps = np.arange(N_FRAMES + 1) * FRAME_HOP
    clips, truth, durations = {}, [], []
    for i in range(n_clips):
        filename = f"clip_{seed}_{i:03d}.wav"
        duration = 10.0 if rng.random() < 0.8 else round(float(rng.uniform(4.0, 9.9)), 3)
        durations.append((filename, duration))
        target = np.zeros((N_FRAMES, n_classes))
        if rng.random() < 0.1:
            truth.append((filename, np.nan, np.nan, np.nan))
        else:
            for c, name in enumerate(class_names):
                t = 0.0
                while True:
                    t += rng.exponential(4.0)
                    length = rng.uniform(0.2, 4.0)
                    if t + length > duration:
                        break
                    onset, offset = round(t, 3), round(t + length, 3)
                    truth.append((filename, onset, offset, name))
                    target[int(onset / FRAME_HOP) : int(np.ceil(offset / FRAME_HOP)), c] = 1.0
                    t = offset + 0.05
        # Evidence of the next class leaks into each class, so cross-triggers occur.
        evidence = target + confusion * np.roll(target, 1, axis=1)
        logits = 5.0 * (evidence - 0.5) + rng.normal(0.0, 2.0, target.shape)
        scores = median_filter(1.0 / (1.0 + np.exp(-logits)), 5)
        clips[filename[:-4]] = ClipScores(timestamps, scores, tuple(class_names))
    ground_truth = pd.DataFrame(truth, columns=["filename", "onset", "offset", "event_label"])
    return clips, ground_truth, pd.DataFrame(durations, columns=["filename", "duration"])


def random_detection_tables(
    ground_truth: pd.DataFrame, durations: pd.DataFrame, seed: int, n_operating_points: int = 12
) -> list[pd.DataFrame]:
    """Operating points from strict to loose: perturbed copies of ground-truth events (some relabelled or split)
    plus random false alarms, with same-class overlaps removed (psds_eval rejects them)."""
    rng = np.random.default_rng(seed)
    classes = sorted(ground_truth["event_label"].dropna().unique())
    events = ground_truth.dropna()
    tables = []
    for k in range(n_operating_points):
        recall, false_alarms = k / (n_operating_points - 1), rng.poisson(0.05 * k * len(durations))
        rows = []
        for filename, onset, offset, label in events.itertuples(index=False):
            if rng.random() >= recall:
                continue
            label = label if rng.random() < 0.8 else classes[rng.integers(len(classes))]
            onset += rng.choice([0.0, -0.2, 0.2, 0.5, rng.uniform(-1, 1)])
            offset += rng.choice([0.0, -0.2, 0.2, -1.0, rng.uniform(-1, 1)])
            if rng.random() < 0.2 and offset - onset > 0.5:
                middle = (onset + offset) / 2
                rows += [(filename, onset, middle - 0.05, label), (filename, middle + 0.05, offset, label)]
            else:
                rows.append((filename, onset, offset, label))
        for _ in range(false_alarms):
            filename, duration = durations.iloc[rng.integers(len(durations))]
            onset = rng.uniform(-0.5, duration + 0.5)
            rows.append((filename, onset, onset + rng.uniform(0.05, 3.0), classes[rng.integers(len(classes))]))
        table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]).round(3)
        table = table[table["offset"] > table["onset"]].sort_values(["filename", "event_label", "onset"])
        keep, last_offset = [], {}
        for index, filename, onset, offset, label in table.itertuples():
            if onset >= last_offset.get((filename, label), -np.inf):
                keep.append(index)
                last_offset[(filename, label)] = offset
        tables.append(table.loc[keep].sample(frac=1.0, random_state=k).reset_index(drop=True))
    return tables


@pytest.fixture
def make_set() -> Callable[..., SyntheticSet]:
    """Factory of :func:`synthetic_set`."""
    return synthetic_set


@pytest.fixture
def make_tables() -> Callable[..., list[pd.DataFrame]]:
    """Factory of :func:`random_detection_tables`."""
    return random_detection_tables
