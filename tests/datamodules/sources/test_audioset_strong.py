"""AudioSet strong tables and class map: parsing with clear errors, merging, class sets, clip-id matching."""
import pytest

from datamodules.sources.audioset_strong import (
    audio_name_key,
    evaluated_classes,
    map_classes,
    match_segments,
    merge_events,
    metric_classes,
    parse_segment_id,
    read_class_map,
    read_strong_table,
    trained_classes,
)
from datamodules.sources.common import LayoutError

HEADER = "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
MAP = "/m/09x0r\tSpeech\n/m/0jbk\tAnimal\n/m/05zppz\tMale speech, man speaking\n/m/07yv9\tVehicle\n/m/028v0c\tSilence\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_class_map_reads_the_tsv_and_the_comma_separated_copy(tmp_path):
    expected = {"/m/09x0r": "Speech", "/m/0jbk": "Animal", "/m/05zppz": "Male speech, man speaking",
                "/m/07yv9": "Vehicle", "/m/028v0c": "Silence"}
    assert read_class_map(_write(tmp_path, "map.tsv", MAP)) == expected
    csv_text = "".join(f'{m},"{n}"\n' for m, n in expected.items())
    class_map = read_class_map(_write(tmp_path, "map.csv", csv_text))
    assert class_map == expected and map_classes(class_map) == list(expected.values())


@pytest.mark.bad_input
@pytest.mark.parametrize("text, message", [
    ("/m/a\tA\n/m/b\tB\textra\n", r"map.tsv, line 2: expected 'mid<TAB>display name', got 3 fields"),
    ("/m/a\tA\n/m/a\tB\n", r"map.tsv, line 2, field 'mid': '/m/a' is listed twice"),
    ("/m/a\tA\n/m/b\tA\n", r"map.tsv, line 2, field 'display name': 'A' is already the name of line 1"),
    ("/m/a\t \n", r"map.tsv, line 1, field 'display name': empty"),
    ("\n", r"map.tsv: the class map is empty"),
])
def test_bad_class_maps(tmp_path, text, message):
    with pytest.raises(LayoutError, match=message):
        read_class_map(_write(tmp_path, "map.tsv", text))


def test_merge_joins_overlapping_and_touching_events_of_one_class_only():
    events = [(2.0, 3.0, "a"), (0.0, 1.0, "a"), (1.0, 1.5, "a"), (0.5, 4.0, "b"), (1.6, 1.7, "a"), (2.5, 2.6, "a"),
              (5.0, 5.0, "b")]
    assert merge_events(events) == [(0.0, 1.5, "a"), (0.5, 4.0, "b"), (1.6, 1.7, "a"), (2.0, 3.0, "a"),
                                    (5.0, 5.0, "b")]
    assert merge_events([]) == []


def test_table_events_are_merged_per_segment(tmp_path):
    text = HEADER + ("--PJHxphWEs_30000\t0.000\t2.500\t/m/09x0r\n"
                     "--PJHxphWEs_30000\t2.500\t4.000\t/m/09x0r\n"  # touches the first: merged
                     "--PJHxphWEs_30000\t1.000\t3.000\t/m/0jbk\n"
                     "YxlGt805lTA_0\t0.000\t10.000\t/m/07yv9\n"
                     "\n"
                     "--PJHxphWEs_30000\t5.000\t6.000\t/m/09x0r\n")
    table = read_strong_table(_write(tmp_path, "train.tsv", text), read_class_map(_write(tmp_path, "m.tsv", MAP)))
    assert list(table.events) == ["--PJHxphWEs_30000", "YxlGt805lTA_0"]
    assert table.events["--PJHxphWEs_30000"] == [(0.0, 4.0, "/m/09x0r"), (1.0, 3.0, "/m/0jbk"), (5.0, 6.0, "/m/09x0r")]
    assert table.events["YxlGt805lTA_0"] == [(0.0, 10.0, "/m/07yv9")]
    assert table.mids == {"/m/09x0r", "/m/0jbk", "/m/07yv9"}


@pytest.mark.bad_input
@pytest.mark.parametrize("rows, message", [
    ("a_0\t0\t1\n", r"t.tsv, line 2: expected 4 tab-separated fields, got 3"),
    ("abc\t0\t1\t/m/09x0r\n", r"t.tsv, line 2, field 'segment_id': segment id 'abc' is not <youtube id>_<start in ms>"),
    ("--PJHxphWEs_3.5\t0\t1\t/m/09x0r\n", r"line 2, field 'segment_id'"),
    ("--PJHxphWEs_0\tzero\t1\t/m/09x0r\n", r"t.tsv, line 2, field 'start_time_seconds': 'zero' is not a number"),
    ("--PJHxphWEs_0\t0\tnan\t/m/09x0r\n", r"t.tsv, line 2, field 'end_time_seconds': 'nan' is not a number"),
    ("--PJHxphWEs_0\t-0.5\t1\t/m/09x0r\n", r"t.tsv, line 2, field 'start_time_seconds': negative time -0.5"),
    ("--PJHxphWEs_0\t2\t1\t/m/09x0r\n", r"t.tsv, line 2, field 'end_time_seconds': 1.0 is before the start 2.0"),
    ("--PJHxphWEs_0\t0\t1\t \n", r"t.tsv, line 2, field 'label': empty"),
    ("--PJHxphWEs_0\t0\t1\t/m/09x0r\n--PJHxphWEs_0\t0\t1\t/m/xyz\n",
     r"t.tsv, line 3, field 'label': '/m/xyz' is not in the class map"),
])
def test_bad_table_rows(tmp_path, rows, message):
    class_map = read_class_map(_write(tmp_path, "m.tsv", MAP))
    with pytest.raises(LayoutError, match=message):
        read_strong_table(_write(tmp_path, "t.tsv", HEADER + rows), class_map)


@pytest.mark.bad_input
def test_a_wrong_header_is_named(tmp_path):
    with pytest.raises(LayoutError, match=r"t.tsv, line 1: expected the header 'segment_id start_time_seconds "
                                          r"end_time_seconds label'.*got 'filename onset offset event_label'"):
        read_strong_table(_write(tmp_path, "t.tsv", "filename\tonset\toffset\tevent_label\na.wav\t0\t1\tx\n"))


def test_class_sets_on_small_tables(tmp_path):
    class_map = read_class_map(_write(tmp_path, "m.tsv", MAP))
    train = read_strong_table(_write(tmp_path, "train.tsv", HEADER + (
        "aaaaaaaaaaa_0\t0\t1\t/m/09x0r\naaaaaaaaaaa_0\t0\t1\t/m/07yv9\nbbbbbbbbbbb_0\t0\t1\t/m/05zppz\n")), class_map)
    evaluation = read_strong_table(_write(tmp_path, "eval.tsv", HEADER + (
        "ccccccccccc_0\t0\t1\t/m/09x0r\nccccccccccc_0\t0\t1\t/m/028v0c\nddddddddddd_0\t0\t1\t/m/07yv9\n")), class_map)
    trained = trained_classes(train, class_map)
    evaluated = evaluated_classes(evaluation, class_map)
    assert trained == ["Male speech, man speaking", "Speech", "Vehicle"]  # sorted display names, not mid order
    assert evaluated == ["Silence", "Speech", "Vehicle"]
    assert metric_classes(trained, evaluated) == ["Speech", "Vehicle"]
    assert len(map_classes(class_map)) == 5  # "Animal" is only in the map


def test_segment_ids_and_community_clip_ids():
    assert parse_segment_id("--PJHxphWEs_30000") == ("--PJHxphWEs", 30000)
    assert parse_segment_id("ab_cd-efgh__0") == ("ab_cd-efgh_", 0)  # a YouTube id may end with '_'
    assert audio_name_key("Y--PJHxphWEs.mp3") == ("--PJHxphWEs", None)
    assert audio_name_key("03/YYxlGt805lTA.mp3") == ("YxlGt805lTA", None)  # unbalanced part folder; id starts with Y
    assert audio_name_key("Y--PJHxphWEs_30000_4") == ("--PJHxphWEs", 30000)  # cut to 20 bytes
    assert audio_name_key("Y--PJHxphWEs_30.000_40.000.wav") == ("--PJHxphWEs", 30000)
    assert audio_name_key("Yab_cd-efgh_") == ("ab_cd-efgh_", None)
    assert audio_name_key("train_0001.wav") == ("train_0001", None)


def test_matching_by_video_and_start():
    segments = ["--PJHxphWEs_30000", "YxlGt805lTA_0", "ab_cd-efgh__10000", "zzzzzzzzzzz_0"]
    files = [["Y--PJHxphWEs.mp3", "Yunlabeled1.mp3", "YYxlGt805lTA.mp3"],
             ["05/Yab_cd-efgh__10000_20000.mp3", "Y--PJHxphWEs_30000_4", "Yab_cd-efgh__20000_30000.mp3"]]
    match = match_segments(segments, files)
    assert match.rows == [(0, 0, "--PJHxphWEs_30000"), (0, 2, "YxlGt805lTA_0"), (1, 0, "ab_cd-efgh__10000")]
    assert match.missing == ["zzzzzzzzzzz_0"]
    assert match.unlabeled == [1, 1]  # 'unlabeled1', and the other start of ab_cd-efgh_
    assert match.duplicates == [(1, 1)]


@pytest.mark.bad_input
def test_a_clip_without_start_of_a_video_with_two_segments_is_an_error():
    with pytest.raises(LayoutError, match=r"train.hdf: clip 'Y--PJHxphWEs.mp3' \(row 0\) has no start time and its "
                                          r"video has 2 segments"):
        match_segments(["--PJHxphWEs_0", "--PJHxphWEs_30000"], [["Y--PJHxphWEs.mp3"]], ["train.hdf"])
