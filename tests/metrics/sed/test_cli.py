"""The ``sonolab sed-eval`` command on generated score files."""
import json

import pytest

from metrics.sed.cli import main
from metrics.sed.evaluate import evaluate_scores
from metrics.sed.postprocess import median_filter_clips
from metrics.sed.psds import PSDS1, PSDS2, ReferenceSet
from metrics.sed.scores import write_score_dir

JSON_KEYS = {"psds1", "psds2", "f1_intersection", "f1_event_macro", "f1_segment_macro"}


@pytest.fixture
def eval_set(tmp_path, make_set):
    clips, ground_truth, durations = make_set(7, n_clips=20, class_names=("Cat", "Dog", "Speech"))
    write_score_dir(str(tmp_path / "scores"), clips)
    ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    durations.to_csv(tmp_path / "durations.tsv", sep="\t", index=False)
    args = ["--scores", str(tmp_path / "scores"), "--ground-truth", str(tmp_path / "gt.tsv"),
            "--durations", str(tmp_path / "durations.tsv")]
    return clips, ground_truth, durations, args, tmp_path


def _run_json(args, capsys):
    assert main(args + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_equals_the_library(eval_set, capsys):
    clips, ground_truth, durations, args, _ = eval_set
    reported = _run_json(args, capsys)
    assert set(reported) == JSON_KEYS
    expected = evaluate_scores(clips, ground_truth, durations)
    for key in JSON_KEYS:
        assert reported[key] == pytest.approx(getattr(expected, key), abs=1e-12)
    reference = ReferenceSet(ground_truth, durations)
    assert reported["psds1"] == pytest.approx(reference.psds(clips, PSDS1), abs=1e-6)
    assert reported["psds2"] == pytest.approx(reference.psds(clips, PSDS2), abs=1e-6)
    assert reported["f1_intersection"] == pytest.approx(reference.intersection_f1(clips), abs=1e-9)


def test_native_engine_and_median_filter(eval_set, capsys):
    clips, ground_truth, durations, args, _ = eval_set
    reported = _run_json(args + ["--native", "--median-filter", "5"], capsys)
    expected = evaluate_scores(median_filter_clips(clips, 5), ground_truth, durations, engine="native")
    assert reported == pytest.approx({key: getattr(expected, key) for key in JSON_KEYS}, abs=1e-12)


def test_text_report(eval_set, capsys):
    *_, args, _ = eval_set
    assert main(args + ["--native"]) == 0
    out = capsys.readouterr().out
    for label in ("PSDS1 (native)", "PSDS2 (native)", "intersection F1", "event-based F1", "segment-based F1"):
        assert label in out


def test_bad_inputs_exit_2_with_a_clear_message(eval_set, capsys):
    clips, ground_truth, durations, args, tmp_path = eval_set
    scores_dir, gt, dur = args[1], args[3], args[5]

    assert main(["--scores", str(tmp_path / "nope"), "--ground-truth", gt, "--durations", dur]) == 2
    assert "score directory does not exist" in capsys.readouterr().err

    (tmp_path / "bad_gt.tsv").write_text("filename\tonset\tevent_label\na.wav\t1\tCat\n")
    assert main(["--scores", scores_dir, "--ground-truth", str(tmp_path / "bad_gt.tsv"), "--durations", dur]) == 2
    assert "missing column(s) ['offset']" in capsys.readouterr().err

    first = sorted(clips)[0]
    (tmp_path / "scores" / f"{first}.tsv").rename(tmp_path / f"{first}.tsv")
    assert main(args) == 2
    assert f"clips without a score file: '{first}'" in capsys.readouterr().err
    (tmp_path / f"{first}.tsv").rename(tmp_path / "scores" / f"{first}.tsv")

    ground_truth.assign(event_label=ground_truth["event_label"].replace("Dog", "Blender")).to_csv(
        tmp_path / "gt_other.tsv", sep="\t", index=False
    )
    assert main(["--scores", scores_dir, "--ground-truth", str(tmp_path / "gt_other.tsv"), "--durations", dur]) == 2
    assert "classes mismatch: ground-truth classes ['Blender'] have no score column" in capsys.readouterr().err

    assert main(args + ["--median-filter-preset", "desed"]) == 0  # Cat, Dog, Speech are DESED classes
    capsys.readouterr()
    assert main(args + ["--median-filter", "3", "--median-filter-preset", "desed"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
