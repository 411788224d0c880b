"""Wrappers over sed_eval and psds_eval."""
import warnings

import pandas as pd
import pytest

from metrics.sed.postprocess import decode_thresholds
from metrics.sed.psds import PSDS2
from metrics.sed.toolkits import psds_eval_intersection_f1, psds_eval_psds, quiet_toolkits, sed_eval_f1


def _direct_sed_eval(detections: pd.DataFrame, ground_truth: pd.DataFrame) -> tuple[float, float, float, float]:
    """sed_eval driven file by file, the way the DCASE'24 baseline drives it."""
    with quiet_toolkits():
        import sed_eval

        classes = list(set(ground_truth["event_label"].dropna()) | set(detections["event_label"].dropna()))
        event = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=classes, t_collar=0.2, percentage_of_length=0.2, empty_system_output_handling="zero_score"
        )
        segment = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes, time_resolution=1.0)
        for filename in ground_truth["filename"].unique():
            reference = ground_truth[ground_truth["filename"] == filename]
            reference = [] if reference["event_label"].isna().all() else reference.to_dict("records")
            estimated = detections[detections["filename"] == filename].to_dict("records")
            event.evaluate(reference_event_list=reference, estimated_event_list=estimated)
            segment.evaluate(reference_event_list=reference, estimated_event_list=estimated)
        e, s = event.results(), segment.results()
    return (
        e["class_wise_average"]["f_measure"]["f_measure"],
        e["overall"]["f_measure"]["f_measure"],
        s["class_wise_average"]["f_measure"]["f_measure"],
        s["overall"]["f_measure"]["f_measure"],
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_sed_eval_wrapper_equals_direct_calls(make_set, seed):
    clips, ground_truth, durations = make_set(seed, n_clips=25)
    detections = decode_thresholds(clips, [0.5]).tables({c: c + ".wav" for c in clips})[0.5]
    got = sed_eval_f1(detections, ground_truth)
    expected = _direct_sed_eval(detections, ground_truth)
    got_tuple = (got.event_macro, got.event_micro, got.segment_macro, got.segment_micro)
    assert got_tuple == pytest.approx(expected, abs=1e-12)
    assert 0.0 < got.event_macro < 1.0 and 0.0 < got.segment_micro < 1.0


def test_empty_detections_score_zero(make_set):
    _, ground_truth, durations = make_set(0, n_clips=5)
    empty = pd.DataFrame(columns=["filename", "onset", "offset", "event_label"])
    result = sed_eval_f1(empty, ground_truth)
    assert (result.event_macro, result.event_micro, result.segment_macro, result.segment_micro) == (0, 0, 0, 0)
    assert psds_eval_intersection_f1(empty, ground_truth, durations) == 0.0


def test_toolkit_warnings_are_silenced(make_set):
    clips, ground_truth, durations = make_set(2, n_clips=6)
    tables = decode_thresholds(clips, [0.3, 0.5, 0.99, 0.995]).tables({c: c + ".wav" for c in clips})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        psds_eval_psds(tables, ground_truth, durations, PSDS2)
        psds_eval_intersection_f1(tables[0.5], ground_truth, durations)
        sed_eval_f1(tables[0.5], ground_truth)
