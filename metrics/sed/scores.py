"""Score files and label tables of sound event detection, in the sed_scores_eval layout.

A score file is one tsv per clip, named ``<audio id>.tsv``, with columns ``onset offset <class 1> ... <class K>``
and one row per frame (a frame's offset is the next frame's onset). The audio id of a table's ``filename`` is the
file name without its extension (``a.wav`` -> ``a``), as sed_scores_eval and the DCASE baseline name them.
Ground-truth tables have columns ``filename onset offset event_label`` (a clip without events has empty fields,
MAESTRO tables add ``confidence``); durations tables have ``filename duration``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

GROUND_TRUTH_COLUMNS = ("filename", "onset", "offset", "event_label")
DURATION_COLUMNS = ("filename", "duration")
# An event may end this much after its clip's duration (rounding of 3-decimal tables), not more.
DURATION_TOLERANCE = 1e-3


class SEDInputError(ValueError):
    """Bad evaluation input; the message names the file (or table) and the field."""


@dataclass(frozen=True, eq=False)
class ClipScores:
    """Frame scores of one clip.

    Attributes:
        timestamps: ``(T + 1,)`` frame boundaries in seconds, strictly increasing.
        scores: ``(T, C)`` scores, one column per class.
        class_names: The ``C`` class names.
    """

    timestamps: np.ndarray
    scores: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        timestamps = np.asarray(self.timestamps, dtype=np.float64)
        scores = np.asarray(self.scores, dtype=np.float64)
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if scores.ndim != 2 or scores.shape[1] != len(self.class_names):
            raise ValueError(f"scores must be (frames, {len(self.class_names)}), got shape {scores.shape}")
        if timestamps.shape != (scores.shape[0] + 1,):
            raise ValueError(f"timestamps must have {scores.shape[0] + 1} entries, got shape {timestamps.shape}")
        if scores.shape[0] == 0 or not np.all(np.diff(timestamps) > 0):
            raise ValueError("timestamps must be strictly increasing and describe at least one frame")

    @property
    def onsets(self) -> np.ndarray:
        """Frame onsets in seconds."""
        return self.timestamps[:-1]

    @property
    def offsets(self) -> np.ndarray:
        """Frame offsets in seconds."""
        return self.timestamps[1:]

    def with_scores(self, scores: np.ndarray) -> "ClipScores":
        """Same frames and classes, new scores (e.g. after median filtering)."""
        return ClipScores(self.timestamps, scores, self.class_names)

    def select(self, class_names: Sequence[str]) -> "ClipScores":
        """The columns of ``class_names``, in that order."""
        missing = [name for name in class_names if name not in self.class_names]
        if missing:
            raise KeyError(f"classes {missing} are not among the scored classes {list(self.class_names)}")
        columns = [self.class_names.index(name) for name in class_names]
        return ClipScores(self.timestamps, self.scores[:, columns], tuple(class_names))

    def to_frame(self) -> pd.DataFrame:
        """The score-file table (``onset``, ``offset``, one column per class)."""
        table = pd.DataFrame(self.scores, columns=list(self.class_names))
        table.insert(0, "offset", self.offsets)
        table.insert(0, "onset", self.onsets)
        return table


def audio_id(filename: str) -> str:
    """Audio id of a table's file name: the base name without its extension."""
    base = os.path.basename(str(filename))
    return base.rsplit(".", 1)[0] if "." in base else base


def write_score_file(path: str, clip: ClipScores) -> None:
    """Writes one clip's score file (full float precision, so reading it back is exact)."""
    clip.to_frame().to_csv(path, sep="\t", index=False)


def read_score_file(path: str) -> ClipScores:
    """Reads and checks one score file.

    Raises:
        SEDInputError: Naming the file and the offending column or row.
    """
    table = _read_tsv(path, "score file")
    columns = list(table.columns)
    if len(columns) < 3 or columns[:2] != ["onset", "offset"]:
        raise SEDInputError(
            f"{path}: a score file needs columns 'onset', 'offset' then one per class; found {columns}"
        )
    if table.empty:
        raise SEDInputError(f"{path}: score file has no frames")
    values = {}
    for column in columns:
        numeric = pd.to_numeric(table[column], errors="coerce")
        bad = numeric.isna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            value = table[column].iloc[line - 2]
            raise SEDInputError(f"{path}, line {line}: column {column!r} is not a number ({value!r})")
        values[column] = numeric.to_numpy(dtype=np.float64)
    onsets, offsets = values["onset"], values["offset"]
    if not np.array_equal(offsets[:-1], onsets[1:]):
        line = int(np.flatnonzero(offsets[:-1] != onsets[1:])[0]) + 3
        raise SEDInputError(f"{path}, line {line}: 'onset' must equal the previous frame's 'offset'")
    if not np.all(offsets > onsets):
        line = int(np.flatnonzero(offsets <= onsets)[0]) + 2
        raise SEDInputError(f"{path}, line {line}: 'offset' must be greater than 'onset'")
    timestamps = np.append(onsets, offsets[-1])
    scores = np.stack([values[c] for c in columns[2:]], axis=1)
    return ClipScores(timestamps, scores, tuple(columns[2:]))


def write_score_dir(directory: str, clips: Mapping[str, ClipScores]) -> None:
    """Writes ``<directory>/<audio id>.tsv`` for every clip (the directory is created)."""
    os.makedirs(directory, exist_ok=True)
    for clip_id, clip in clips.items():
        write_score_file(os.path.join(directory, f"{clip_id}.tsv"), clip)


def read_score_dir(directory: str) -> dict[str, ClipScores]:
    """Reads every ``*.tsv`` of a directory, keyed by audio id (the file name without ``.tsv``).

    Raises:
        SEDInputError: The directory is missing or holds no score file, a file is malformed, or two files score
            different classes.
    """
    if not os.path.isdir(directory):
        raise SEDInputError(f"{directory}: score directory does not exist")
    names = sorted(name for name in os.listdir(directory) if name.endswith(".tsv"))
    if not names:
        raise SEDInputError(f"{directory}: no score files (*.tsv) found")
    clips: dict[str, ClipScores] = {}
    for name in names:
        clip = read_score_file(os.path.join(directory, name))
        if clips:
            first_name, first = names[0], next(iter(clips.values()))
            if clip.class_names != first.class_names:
                raise SEDInputError(
                    f"{os.path.join(directory, name)}: classes mismatch, its class columns "
                    f"{list(clip.class_names)} differ from {list(first.class_names)} in {first_name}"
                )
        clips[name[: -len(".tsv")]] = clip
    return clips


def read_ground_truth(path: str) -> pd.DataFrame:
    """Reads and checks a strong-label table (see :func:`check_ground_truth`)."""
    return check_ground_truth(_read_tsv(path, "ground-truth file"), path)


def check_ground_truth(table: pd.DataFrame, source: str = "ground truth") -> pd.DataFrame:
    """Checks a strong-label table and returns it with float onsets/offsets.

    Rows with an empty ``event_label`` mark clips without events; their onset/offset may be empty.

    Raises:
        SEDInputError: A column is missing, a file name is empty, or an event has a non-numeric or
            inverted onset/offset (the message names ``source``, the line and the field).
    """
    _require_columns(table, GROUND_TRUTH_COLUMNS, source)
    table = table.copy()
    _check_filenames(table, source)
    labels = table["event_label"]
    has_event = labels.notna() & (labels.astype(str).str.len() > 0)
    table.loc[~has_event, "event_label"] = np.nan
    for column in ("onset", "offset") + (("confidence",) if "confidence" in table.columns else ()):
        numeric = pd.to_numeric(table[column], errors="coerce")
        bad = has_event & numeric.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SEDInputError(
                f"{source}, line {row + 2}: field {column!r} of an event must be a number, "
                f"got {table[column].iloc[row]!r}"
            )
        table[column] = numeric.astype(np.float64)
    inverted = has_event & (table["offset"] < table["onset"])
    if inverted.any():
        row = int(np.flatnonzero(inverted.to_numpy())[0])
        raise SEDInputError(
            f"{source}, line {row + 2}: 'offset' {table['offset'].iloc[row]} "
            f"is before 'onset' {table['onset'].iloc[row]}"
        )
    return table.reset_index(drop=True)


def read_durations(path: str) -> pd.DataFrame:
    """Reads and checks a durations table (see :func:`check_durations`)."""
    return check_durations(_read_tsv(path, "durations file"), path)


def check_durations(table: pd.DataFrame, source: str = "durations") -> pd.DataFrame:
    """Checks a ``filename duration`` table; exact duplicate rows are dropped.

    Raises:
        SEDInputError: A column is missing, a duration is not a positive number, or a file is listed twice with
            different durations.
    """
    _require_columns(table, DURATION_COLUMNS, source)
    table = table.copy()
    _check_filenames(table, source)
    durations = pd.to_numeric(table["duration"], errors="coerce")
    bad = durations.isna() | ~(durations > 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SEDInputError(
            f"{source}, line {row + 2}: field 'duration' must be a positive number, got {table['duration'].iloc[row]!r}"
        )
    table["duration"] = durations.astype(np.float64)
    table = table.drop_duplicates(["filename", "duration"])
    repeated = table["filename"].duplicated()
    if repeated.any():
        raise SEDInputError(
            f"{source}: file {table['filename'][repeated].iloc[0]!r} is listed with different durations"
        )
    return table.reset_index(drop=True)


def check_event_extents(
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    source: str = "ground truth",
    durations_source: str = "durations",
) -> None:
    """Checks that no event ends after its clip's duration (beyond :data:`DURATION_TOLERANCE`).

    Args:
        ground_truth: A table checked by :func:`check_ground_truth` (its row order is the file's line order).
        durations: A table checked by :func:`check_durations`; clips it does not list are not checked here.
        source, durations_source: Names of the two tables (file paths) for the message.

    Raises:
        SEDInputError: Naming the ground-truth file and line, the clip, the event and the declared duration.
    """
    duration = ground_truth["filename"].map(audio_id).map(
        dict(zip(durations["filename"].map(audio_id), durations["duration"])))
    past = ground_truth["event_label"].notna() & (ground_truth["offset"] > duration + DURATION_TOLERANCE)
    if past.any():
        row = int(np.flatnonzero(past.to_numpy())[0])
        event = ground_truth.iloc[row]
        raise SEDInputError(
            f"{source}, line {row + 2}: event {event['event_label']!r} {event['onset']:g}-{event['offset']:g} s of "
            f"clip {event['filename']!r} ends after the clip's duration {duration.iloc[row]:g} s in "
            f"{durations_source}"
        )


def _read_tsv(path: str, what: str) -> pd.DataFrame:
    if not os.path.isfile(path):
        raise SEDInputError(f"{path}: {what} does not exist")
    try:
        # "round_trip" parses every decimal to the float it was printed from (the default parser can be 1 ulp off).
        return pd.read_csv(path, sep="\t", float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SEDInputError(f"{path}: cannot be read as a tab-separated table ({err})") from err


def _require_columns(table: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SEDInputError(f"{source}: missing column(s) {missing}; found {list(table.columns)}")


def _check_filenames(table: pd.DataFrame, source: str) -> None:
    names = table["filename"]
    empty = names.isna() | (names.astype(str).str.strip().str.len() == 0)
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise SEDInputError(f"{source}, line {row + 2}: field 'filename' is empty")
    table["filename"] = names.astype(str)


def restrict_to_clips(ground_truth: pd.DataFrame, durations: pd.DataFrame,
                      clip_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ground truth and durations of the clips ``clip_ids`` (audio ids) only: the part of an evaluation set that was
    scored (``limit_val_batches``, ...). Returns them unchanged (re-indexed) when every clip was scored."""
    keep = set(clip_ids)
    if len(keep) < len(durations):
        durations = durations[durations["filename"].map(audio_id).isin(keep)]
        ground_truth = ground_truth[ground_truth["filename"].map(audio_id).isin(keep)]
    return ground_truth.reset_index(drop=True), durations.reset_index(drop=True)
