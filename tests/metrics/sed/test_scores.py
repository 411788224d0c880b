"""Score files, ground-truth and durations tables: round trips and clear errors."""
import numpy as np
import pandas as pd
import pytest

from metrics.sed.scores import (
    ClipScores,
    SEDInputError,
    audio_id,
    check_event_extents,
    read_durations,
    read_ground_truth,
    read_score_dir,
    read_score_file,
    write_score_dir,
)


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_score_dir_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    clips = {
        "Y--abc_0.000_7.000": ClipScores(np.arange(157) * 0.064, rng.random((156, 3)), ("Cat", "Dog", "Speech")),
        "b": ClipScores(np.arange(11) * 0.04, rng.random((10, 3)), ("Cat", "Dog", "Speech")),
    }
    write_score_dir(str(tmp_path / "scores"), clips)
    back = read_score_dir(str(tmp_path / "scores"))
    assert sorted(back) == sorted(clips)
    for clip_id, clip in clips.items():
        np.testing.assert_array_equal(back[clip_id].timestamps, clip.timestamps)
        np.testing.assert_array_equal(back[clip_id].scores, clip.scores)
        assert back[clip_id].class_names == clip.class_names
    header = (tmp_path / "scores" / "b.tsv").read_text().splitlines()[0]
    assert header.split("\t") == ["onset", "offset", "Cat", "Dog", "Speech"]


def test_audio_id_strips_only_the_extension():
    assert audio_id("Y--abc_0.000_7.000.wav") == "Y--abc_0.000_7.000"
    assert audio_id("dir/a.wav") == "a"


@pytest.mark.parametrize(
    "text, message",
    [
        ("start\toffset\tCat\n0\t1\t0.5\n", "needs columns 'onset', 'offset'"),
        ("onset\toffset\n0\t1\n", "needs columns 'onset', 'offset'"),
        ("onset\toffset\tCat\n0\t1\tabc\n", "line 2: column 'Cat' is not a number"),
        ("onset\toffset\tCat\n0\t1\t0.1\n1.5\t2\t0.2\n", "line 3: 'onset' must equal the previous frame's 'offset'"),
        ("onset\toffset\tCat\n0\t0\t0.1\n", "line 2: 'offset' must be greater than 'onset'"),
        ("onset\toffset\tCat\n", "no frames"),
    ],
)
@pytest.mark.bad_input
def test_bad_score_file(tmp_path, text, message):
    path = _write(tmp_path / "x.tsv", text)
    with pytest.raises(SEDInputError, match=message) as err:
        read_score_file(path)
    assert path in str(err.value)


@pytest.mark.bad_input
def test_score_dir_errors(tmp_path):
    with pytest.raises(SEDInputError, match="score directory does not exist"):
        read_score_dir(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SEDInputError, match="no score files"):
        read_score_dir(str(tmp_path / "empty"))
    (tmp_path / "mixed").mkdir()
    _write(tmp_path / "mixed" / "a.tsv", "onset\toffset\tCat\tDog\n0\t1\t0.1\t0.2\n")
    _write(tmp_path / "mixed" / "b.tsv", "onset\toffset\tDog\tCat\n0\t1\t0.1\t0.2\n")
    with pytest.raises(SEDInputError, match="b.tsv: classes mismatch"):
        read_score_dir(str(tmp_path / "mixed"))


def test_ground_truth_reader_keeps_clips_without_events(tmp_path):
    path = _write(
        tmp_path / "gt.tsv",
        "filename\tonset\toffset\tevent_label\na.wav\t0.5\t2.0\tCat\nb.wav\t\t\t\nc.wav\t1\t3\tDog\n",
    )
    table = read_ground_truth(path)
    assert list(table["filename"]) == ["a.wav", "b.wav", "c.wav"]
    assert table["event_label"].isna().tolist() == [False, True, False]
    assert table["onset"].dtype == np.float64


@pytest.mark.parametrize(
    "text, message",
    [
        ("filename\tonset\tevent_label\na.wav\t0\tCat\n", "missing column\\(s\\) \\['offset'\\]"),
        (
            "filename\tonset\toffset\tevent_label\na.wav\tx\t2\tCat\n",
            "line 2: field 'onset' of an event must be a number",
        ),
        (
            "filename\tonset\toffset\tevent_label\na.wav\t1\t2\tCat\na.wav\t3\t2\tDog\n",
            "line 3: 'offset' 2.0 is before",
        ),
        ("filename\tonset\toffset\tevent_label\n\t1\t2\tCat\n", "line 2: field 'filename' is empty"),
    ],
)
@pytest.mark.bad_input
def test_bad_ground_truth(tmp_path, text, message):
    path = _write(tmp_path / "gt.tsv", text)
    with pytest.raises(SEDInputError, match=message) as err:
        read_ground_truth(path)
    assert path in str(err.value)


@pytest.mark.bad_input
def test_durations_reader(tmp_path):
    table = read_durations(_write(tmp_path / "d.tsv", "filename\tduration\na.wav\t10\na.wav\t10\nb.wav\t7.5\n"))
    assert table.to_dict("list") == {"filename": ["a.wav", "b.wav"], "duration": [10.0, 7.5]}
    with pytest.raises(SEDInputError, match="line 3: field 'duration' must be a positive number"):
        read_durations(_write(tmp_path / "bad.tsv", "filename\tduration\na.wav\t10\nb.wav\t-1\n"))
    with pytest.raises(SEDInputError, match="'a.wav' is listed with different durations"):
        read_durations(_write(tmp_path / "dup.tsv", "filename\tduration\na.wav\t10\na.wav\t9\n"))
    with pytest.raises(SEDInputError, match="does not exist"):
        read_durations(str(tmp_path / "none.tsv"))


@pytest.mark.bad_input
def test_clip_scores_validation():
    with pytest.raises(ValueError, match="timestamps must have 3 entries"):
        ClipScores(np.arange(4.0), np.zeros((2, 1)), ("a",))
    with pytest.raises(ValueError, match="strictly increasing"):
        ClipScores(np.array([0.0, 1.0, 1.0]), np.zeros((2, 1)), ("a",))
    clip = ClipScores(np.arange(3.0), np.array([[0.1, 0.2], [0.3, 0.4]]), ("a", "b"))
    np.testing.assert_array_equal(clip.select(["b"]).scores, [[0.2], [0.4]])
    pd.testing.assert_frame_equal(
        clip.to_frame(), pd.DataFrame({"onset": [0.0, 1.0], "offset": [1.0, 2.0], "a": [0.1, 0.3], "b": [0.2, 0.4]})
    )


@pytest.mark.bad_input
def test_events_past_the_clip_duration_are_an_error(tmp_path):
    gt = read_ground_truth(_write(tmp_path / "gt.tsv", "filename\tonset\toffset\tevent_label\n"
                                  "a.wav\t1.0\t10.0005\tDog\nb.wav\t\t\t\nb.wav\t7.5\t9.25\tCat\n"))
    durations = pd.DataFrame({"filename": ["a.wav", "b.wav"], "duration": [10.0, 9.0]})
    with pytest.raises(SEDInputError) as err:
        check_event_extents(gt, durations, "gt.tsv", "durations.tsv")
    # a.wav ends within the 1 ms tolerance; b.wav's Cat event (line 4) ends 0.25 s late
    assert str(err.value) == ("gt.tsv, line 4: event 'Cat' 7.5-9.25 s of clip 'b.wav' ends after the clip's "
                              "duration 9 s in durations.tsv")
    check_event_extents(gt, durations.assign(duration=[10.0, 9.25]))  # no error
