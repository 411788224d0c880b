"""The ``sonolab sed-eval`` command on generated score files."""
import json

import numpy as np
import pytest

import metrics.sed.evaluate as evaluate
from metrics.sed.cli import main
from metrics.sed.evaluate import evaluate_scores, psds_eval_cost_warning
from metrics.sed.postprocess import median_filter_clips
from metrics.sed.psds import PSDS1, PSDS2, ReferenceSet
from metrics.sed.scores import ClipScores, write_score_dir

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
    reported = _run_json(args + ["--median-filter", "5"], capsys)
    expected = evaluate_scores(median_filter_clips(clips, 5), ground_truth, durations, engine="native")
    assert reported == pytest.approx({key: getattr(expected, key) for key in JSON_KEYS}, abs=1e-12)
    assert _run_json(args + ["--native", "--median-filter", "5"], capsys) == reported  # the former flag


def test_text_report_native_by_default(eval_set, capsys):
    *_, args, _ = eval_set
    assert main(args) == 0
    captured = capsys.readouterr()
    for label in ("PSDS1 (native)", "PSDS2 (native)", "intersection F1", "event-based F1", "segment-based F1"):
        assert label in captured.out
    assert captured.err == ""


@pytest.mark.bad_input
def test_psds_eval_engine_cross_checks_and_warns_when_large(tmp_path, make_set, capsys, monkeypatch):
    clips, ground_truth, durations = make_set(3, n_clips=6, class_names=("Cat", "Dog"))
    write_score_dir(str(tmp_path / "scores"), clips)
    ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    durations.to_csv(tmp_path / "durations.tsv", sep="\t", index=False)
    args = ["--scores", str(tmp_path / "scores"), "--ground-truth", str(tmp_path / "gt.tsv"),
            "--durations", str(tmp_path / "durations.tsv")]
    native = _run_json(args, capsys)
    monkeypatch.setattr(evaluate, "PSDS_EVAL_WARN_SIZE", 500)
    assert main(args + ["--engine", "psds_eval", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == pytest.approx(native, abs=1e-9)
    assert captured.err == ("sonolab sed-eval: warning: psds_eval over 50 operating points x 2 classes x 6 clips "
                            "(600 > 500) may take many minutes and gigabytes of memory; the native engine gives "
                            "the same values in seconds\n")


@pytest.mark.bad_input
def test_psds_eval_cost_threshold():
    assert psds_eval_cost_warning(50, 10, 100) is None  # 50,000: the limit itself
    warning = psds_eval_cost_warning(50, 26, 1200)
    assert warning.startswith("psds_eval over 50 operating points x 26 classes x 1200 clips (1,560,000 > 50,000)")


@pytest.mark.bad_input
def test_score_classes_without_ground_truth_need_the_label_space(eval_set, capsys):
    clips, ground_truth, durations, args, tmp_path = eval_set
    reference = _run_json(args, capsys)
    rng = np.random.default_rng(0)
    extended = {clip_id: ClipScores(clip.timestamps, np.c_[clip.scores, rng.random(len(clip.scores))],
                                    clip.class_names + ("Blender",)) for clip_id, clip in clips.items()}
    write_score_dir(str(tmp_path / "extended"), extended)
    args = ["--scores", str(tmp_path / "extended"), *args[2:]]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"sonolab sed-eval: error: {tmp_path / 'extended'}: score columns ['Blender'] are not ground-truth classes "
        f"({tmp_path / 'gt.tsv'} has ['Cat', 'Dog', 'Speech']); if they belong to the label space but have no "
        "events here, name the space with --classes (a preset, a file or a comma list)\n")
    # named as a comma list or a file, the space is accepted; Blender has no events and is not evaluated
    assert _run_json(args + ["--classes", "Cat,Dog,Speech,Blender"], capsys) == pytest.approx(reference, abs=1e-12)
    (tmp_path / "classes.txt").write_text("Blender\nCat\nDog\nSpeech\n")
    from_file = _run_json(args + ["--classes", str(tmp_path / "classes.txt")], capsys)
    assert from_file == pytest.approx(reference, abs=1e-12)

    for space, message in [
        ("Cat,Dog,Speech", "score columns ['Blender'] are not in the label space --classes ['Cat', 'Dog', "
                           "'Speech']"),
        ("Cat,Dog,Speech,Blender,Frying", "classes ['Frying'] of --classes have no score column"),
        ("desed", "classes ['Alarm_bell_ringing', 'Dishes', 'Electric_shaver_toothbrush', 'Frying', "
                  "'Running_water', 'Vacuum_cleaner'] of --classes have no score column"),
        ("maestro", "score columns ['Cat', 'Dog', 'Speech', 'Blender'] are not in the label space --classes"),
    ]:
        assert main(args + ["--classes", space]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sonolab sed-eval: error: {tmp_path / 'extended'}: {message}")
        assert err.count("\n") == 1

    line = int(np.flatnonzero(ground_truth["event_label"] == "Dog")[0]) + 2
    ground_truth.assign(event_label=ground_truth["event_label"].replace("Dog", "Frying")).to_csv(
        tmp_path / "gt_frying.tsv", sep="\t", index=False)
    assert main(args[:2] + ["--ground-truth", str(tmp_path / "gt_frying.tsv"), *args[4:],
                            "--classes", "Cat,Dog,Speech,Blender"]) == 2
    assert capsys.readouterr().err == (
        f"sonolab sed-eval: error: {tmp_path / 'gt_frying.tsv'}, line {line}: event label 'Frying' is not in the "
        "label space --classes ['Cat', 'Dog', 'Speech', 'Blender']\n")


@pytest.mark.bad_input
def test_events_past_the_declared_duration_are_an_error(eval_set, capsys):
    clips, ground_truth, durations, args, tmp_path = eval_set
    row = int(np.flatnonzero(ground_truth["event_label"].notna())[3])
    event = ground_truth.iloc[row]
    duration = float(durations.set_index("filename")["duration"][event["filename"]])
    late = ground_truth.copy()
    late.loc[row, "offset"] = duration + 0.5
    late.to_csv(tmp_path / "gt_late.tsv", sep="\t", index=False)
    assert main(args[:2] + ["--ground-truth", str(tmp_path / "gt_late.tsv"), *args[4:]]) == 2
    assert capsys.readouterr().err == (
        f"sonolab sed-eval: error: {tmp_path / 'gt_late.tsv'}, line {row + 2}: event {event['event_label']!r} "
        f"{event['onset']:g}-{duration + 0.5:g} s of clip {event['filename']!r} ends after the clip's duration "
        f"{duration:g} s in {tmp_path / 'durations.tsv'}\n")


@pytest.mark.bad_input
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
