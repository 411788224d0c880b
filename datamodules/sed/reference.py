"""Ground-truth and duration tables of an HDF5 evaluation file, in the columns of :mod:`metrics.sed`."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import pandas as pd

from datamodules.format.hdf5 import AudioH5

GROUND_TRUTH_COLUMNS = ["filename", "onset", "offset", "event_label"]
DURATION_COLUMNS = ["filename", "duration"]


def reference_tables(h5: AudioH5, label_space: Sequence[str], clip_seconds: float) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """``(ground_truth, durations)`` of the clips of ``h5`` as the model sees them.

    A clip's duration is its stored ``duration`` (``clip_seconds`` for files without one) capped at
    ``clip_seconds``, as evaluation reads the start of longer clips; events are clipped to it. Events of classes
    outside ``label_space`` are left out, aliases are not applied (metrics score each file in its own classes), and
    a clip without events gets one row with an empty (NaN) ``event_label``. ``filename`` is the clip id as stored.

    Raises:
        ValueError: The file has no strong events or no class names.
    """
    if not h5.has_events() or not h5.class_names:
        raise ValueError(f"{h5.path}: a reference needs strong events and class names; the file has "
                         f"{'no events' if not h5.has_events() else 'no class_names'}")
    label_space = set(label_space)
    stored = h5.durations if h5.durations is not None else np.full(len(h5), clip_seconds)
    durations = np.minimum(np.asarray(stored, dtype=np.float64), float(clip_seconds))
    rows = []
    for i, name in enumerate(h5.names):
        events = h5.events(i)
        kept = 0
        for onset, offset, cls in zip(events["onset"], events["offset"], events["class"]):
            label = h5.class_names[int(cls)]
            onset, offset = float(onset), min(float(offset), durations[i])
            if label in label_space and onset < durations[i] and offset > onset:
                rows.append((name, round(onset, 6), round(offset, 6), label))
                kept += 1
        if not kept:
            rows.append((name, np.nan, np.nan, np.nan))
    ground_truth = pd.DataFrame(rows, columns=GROUND_TRUTH_COLUMNS)
    return ground_truth, pd.DataFrame({"filename": list(h5.names), "duration": durations})
