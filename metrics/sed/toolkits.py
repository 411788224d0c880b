"""The official toolkits, called as the DCASE'24 Task 4 baseline calls them: psds_eval and sed_eval.

Both are imported lazily (psds_eval imports matplotlib, sed_eval imports dcase_util and ``pkg_resources``) and
run under :func:`quiet_toolkits`, which hides the deprecation and pandas warnings they emit on current stacks.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.sed.psds import F1_CRITERIA, PSDS1, PSDSParams

DETECTION_COLUMNS = ["filename", "onset", "offset", "event_label"]


@contextlib.contextmanager
def quiet_toolkits() -> Iterator[None]:
    """Silences the warnings psds_eval, sed_eval and dcase_util emit with numpy 2 / pandas 2 / setuptools 81."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        # psds_eval skips operating points identical to an earlier one (e.g. two thresholds without detections).
        warnings.filterwarnings("ignore", message="A similar operating point exists", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=pd.errors.SettingWithCopyWarning)
        # psds_eval's per-class F1 divides 0 by 0 for classes without true positives (they become NaN by design).
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield


def psds_eval_psds(
    tables: Mapping[float, pd.DataFrame] | Sequence[pd.DataFrame],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    params: PSDSParams = PSDS1,
) -> float:
    """PSDS by psds_eval from one detection table per operating point.

    Args:
        tables: Detection tables (``filename onset offset event_label``), e.g. one per threshold.
        ground_truth: Strong labels (rows without a label mark clips without events).
        durations: ``filename duration`` of the evaluated clips.
        params: The scenario (:data:`metrics.sed.psds.PSDS1`, :data:`metrics.sed.psds.PSDS2`, ...).
    """
    with quiet_toolkits():
        from psds_eval import PSDSEval

        evaluator = PSDSEval(
            dtc_threshold=params.dtc,
            gtc_threshold=params.gtc,
            cttc_threshold=params.cttc,
            ground_truth=ground_truth,
            metadata=durations,
        )
        items = tables.items() if isinstance(tables, Mapping) else enumerate(tables)
        for name, table in items:
            evaluator.add_operating_point(_indexed_from_one(table), info={"name": str(name)})
        return float(evaluator.psds(alpha_ct=params.alpha_ct, alpha_st=params.alpha_st, max_efpr=params.max_efpr).value)


def psds_eval_intersection_f1(
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    criteria: PSDSParams = F1_CRITERIA,
) -> float:
    """Intersection-based macro F1 by psds_eval's ``compute_macro_f_score`` (DCASE: detections at 0.5).

    As the DCASE baseline: 0.0 for an empty detection table or an undefined (NaN) average.
    """
    if detections.empty:
        return 0.0
    with quiet_toolkits():
        from psds_eval import PSDSEval

        evaluator = PSDSEval(
            dtc_threshold=criteria.dtc,
            gtc_threshold=criteria.gtc,
            cttc_threshold=criteria.cttc,
            ground_truth=ground_truth,
            metadata=durations,
        )
        f1, _ = evaluator.compute_macro_f_score(_indexed_from_one(detections))
    return 0.0 if np.isnan(f1) else float(f1)


@dataclass(frozen=True)
class CollarSegmentF1:
    """sed_eval F1 scores.

    Attributes:
        event_macro: Event-based (collar) class-wise average F1.
        event_micro: Event-based overall (micro) F1.
        segment_macro: Segment-based class-wise average F1.
        segment_micro: Segment-based overall (micro) F1.
    """

    event_macro: float
    event_micro: float
    segment_macro: float
    segment_micro: float


def sed_eval_f1(
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    time_resolution: float = 1.0,
) -> CollarSegmentF1:
    """sed_eval EventBasedMetrics and SegmentBasedMetrics F1, as the DCASE baseline computes them.

    The class list is the union of ground-truth and detected labels; every file of the ground-truth table is
    evaluated (files only in the detections are not); an empty detection table scores 0 everywhere.
    """
    if detections.empty:
        return CollarSegmentF1(0.0, 0.0, 0.0, 0.0)
    reference = ground_truth[ground_truth["event_label"].notna()]
    estimated = detections[detections["event_label"].notna()]
    classes = sorted(set(reference["event_label"]) | set(estimated["event_label"]))
    reference_by_file = _records_by_file(reference)
    estimated_by_file = _records_by_file(estimated)
    with quiet_toolkits():
        import sed_eval

        event_metric = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=classes,
            t_collar=t_collar,
            percentage_of_length=percentage_of_length,
            empty_system_output_handling="zero_score",
        )
        segment_metric = sed_eval.sound_event.SegmentBasedMetrics(
            event_label_list=classes, time_resolution=time_resolution
        )
        for filename in ground_truth["filename"].unique():
            ref = reference_by_file.get(filename, [])
            est = estimated_by_file.get(filename, [])
            event_metric.evaluate(reference_event_list=ref, estimated_event_list=est)
            segment_metric.evaluate(reference_event_list=ref, estimated_event_list=est)
        event_results, segment_results = event_metric.results(), segment_metric.results()
    return CollarSegmentF1(
        event_macro=float(event_results["class_wise_average"]["f_measure"]["f_measure"]),
        event_micro=float(event_results["overall"]["f_measure"]["f_measure"]),
        segment_macro=float(segment_results["class_wise_average"]["f_measure"]["f_measure"]),
        segment_micro=float(segment_results["overall"]["f_measure"]["f_measure"]),
    )


def _indexed_from_one(table: pd.DataFrame) -> pd.DataFrame:
    """The detection columns with a 1-based index (a 0-based one trips psds_eval, audioanalytic/psds_eval#3)."""
    table = table[DETECTION_COLUMNS].copy()
    table.index = pd.RangeIndex(1, len(table) + 1)
    return table


def _records_by_file(table: pd.DataFrame) -> dict[str, list[dict]]:
    """Event dicts (``filename onset offset event_label``) grouped by file, in table order."""
    records: dict[str, list[dict]] = {}
    for filename, onset, offset, label in zip(table["filename"], table["onset"], table["offset"], table["event_label"]):
        records.setdefault(filename, []).append(
            {"filename": filename, "onset": float(onset), "offset": float(offset), "event_label": label}
        )
    return records
