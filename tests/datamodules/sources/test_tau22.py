"""TAU22 layout -> pack items and `sonolab asc-pack`, on the demo scenes."""
import os

import numpy as np
import pytest

from datamodules.format.hdf5 import AudioH5
from datamodules.sources.tau22 import parse_tau_filename, read_filenames, read_tau_meta
from experiments.commands.asc_pack import main
from metrics.asc import DEVICES, SCENE_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_tau_filename():
    fields = parse_tau_filename("audio/street_pedestrian-lyon-1162-44650-3-s5.wav")
    assert fields == {"scene": "street_pedestrian", "city": "lyon", "location": "1162", "segment": "44650",
                      "snippet": "3", "device": "s5"}
    with pytest.raises(ValueError, match="TAU file name"):
        parse_tau_filename("audio/clip.wav")


def test_asc_pack_round_trip(demo_scenes, tmp_path):
    tau = os.path.join(demo_scenes, "scenes")
    assert main(["--tau-dir", tau, "--out-dir", str(tmp_path), "--workers", "0", "--no-progress"]) == 0
    meta = read_tau_meta(os.path.join(tau, "meta.csv"))
    for part, table in (("train", "split100.csv"), ("test", "test.csv")):
        ours = AudioH5(str(tmp_path / f"tau_{part}.h5"))
        demo = AudioH5(os.path.join(demo_scenes, f"scenes_{part}.h5"))
        assert ours.sample_rate == 44100 and ours.codec == "pcm16"
        assert list(ours.names) == read_filenames(os.path.join(tau, table))
        assert ours.scene_names == sorted(ours.scene_names) == list(SCENE_CLASSES)
        assert ours.device_names == list(DEVICES)
        for i in range(0, len(ours), 7):
            name = ours.names[i]
            assert ours.scene_names[ours.label("scene", i)] == name.split("/")[1].split("-")[0]
            assert ours.device_names[ours.label("device", i)] == parse_tau_filename(name)["device"]
            assert ours.city_names[ours.label("city", i)] == meta[name]["city"] == parse_tau_filename(name)["city"]
            j = demo.index_of(name)
            assert demo.scene_names[demo.label("scene", j)] == ours.scene_names[ours.label("scene", i)]
            np.testing.assert_array_equal(ours.waveform(i), demo.waveform(j))
            assert ours.waveform(i).shape == (44100,)
    for n in (5, 10, 25, 50, 100):
        assert (tmp_path / f"split{n}.csv").is_file()


@pytest.mark.bad_input
def test_read_tau_meta_checks_device(tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_text("filename\tscene_label\tidentifier\tsource_label\naudio/bus-lyon-1-2-0-b.wav\tbus\tlyon-1\tc\n")
    with pytest.raises(ValueError, match="source_label"):
        read_tau_meta(str(meta))


def _asc_pack(tau_dir, out_dir, capsys):
    code = main(["--tau-dir", tau_dir, "--out-dir", str(out_dir), "--workers", "0", "--no-progress"])
    return code, capsys.readouterr()


def test_asc_pack_tiny_tau22(tiny_tau, tmp_path, capsys):
    code, out = _asc_pack(tiny_tau("tau22"), tmp_path / "out", capsys)
    assert code == 0, out.err
    train, test = AudioH5(str(tmp_path / "out" / "tau_train.h5")), AudioH5(str(tmp_path / "out" / "tau_test.h5"))
    assert list(train.names) == ["audio/bus-lyon-1-10-0-a.wav", "audio/park-paris-2-20-1-b.wav",
                                 "audio/tram-lyon-3-30-0-s1.wav"]
    assert train.scene_names == ["bus", "park", "tram"] and [train.label("scene", i) for i in range(3)] == [0, 1, 2]
    assert list(test.names) == ["audio/park-lyon-4-40-2-c.wav"] and test.label("device", 0) == DEVICES.index("c")


def _edit(path, old: str, new: str) -> None:
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, new))


@pytest.mark.parametrize("change,message", [
    (lambda d: os.remove(os.path.join(d, "meta.csv")),
     "{d}/meta.csv not found (expected the TAU22 development layout: meta.csv, audio/, split5.csv ... split100.csv, "
     "test.csv; or the TAU20 layout: meta.csv, audio/, evaluation_setup/fold1_train.csv, fold1_evaluate.csv)"),
    (lambda d: os.remove(os.path.join(d, "split100.csv")),
     "TAU22 split100.csv not found: {d}/split100.csv (expected the TAU22 development layout: meta.csv, audio/, "
     "split5.csv ... split100.csv, test.csv)"),
    (lambda d: _edit(os.path.join(d, "meta.csv"), "park\tparis-2", "\tparis-2"),
     "{d}/meta.csv, line 3, field 'scene_label': empty"),
    (lambda d: _edit(os.path.join(d, "meta.csv"), "\tb\n", "\n"),  # a short row: no source_label is fine ...
     None),
    (lambda d: _edit(os.path.join(d, "meta.csv"), "\tb\n", "\tc\n"),
     "{d}/meta.csv, line 3, field 'source_label': 'c' but the file name says 'b'"),
    (lambda d: _edit(os.path.join(d, "meta.csv"), "audio/bus-lyon-1-10-0-a.wav\t", "audio/bus_clip.wav\t"),
     "{d}/meta.csv, line 2, field 'filename': 'audio/bus_clip.wav' is not a TAU file name "
     "<scene>-<city>-<location>-<segment>[-<snippet>]-<device>"),
    (lambda d: _edit(os.path.join(d, "meta.csv"), "\ta\n", "\ta\textra\n"),
     "{d}/meta.csv (tab-separated), line 2: 5 fields but the header has 4"),
    (lambda d: _edit(os.path.join(d, "split100.csv"), "tram-lyon-3-30-0-s1", "tram-lyon-3-30-0-s2"),
     "{d}/split100.csv, line 4, field 'filename': 'audio/tram-lyon-3-30-0-s2.wav' is not in meta.csv"),
    (lambda d: os.remove(os.path.join(d, "audio", "tram-lyon-3-30-0-s1.wav")),
     "{d}/split100.csv: 1 of 3 listed audio files are missing under {d}, e.g. audio/tram-lyon-3-30-0-s1.wav (were "
     "all audio archives unpacked into audio/?)"),
    (lambda d: open(os.path.join(d, "test.csv"), "wb").write("filename\naudio/caf\xe9.wav\n".encode("latin-1")),
     "{d}/test.csv: not UTF-8 text at byte 18 (line 2; save it as UTF-8)"),
])
@pytest.mark.bad_input
def test_asc_pack_errors_are_one_line(tiny_tau, tmp_path, capsys, change, message):
    tau = tiny_tau("tau22")
    change(tau)
    code, out = _asc_pack(tau, tmp_path / "out", capsys)
    if message is None:
        assert code == 0, out.err
        return
    assert (code, out.err) == (2, f"sonolab asc-pack: error: {message.format(d=tau)}\n")
    assert not os.path.exists(tmp_path / "out" / "tau_train.h5")


@pytest.mark.bad_input
def test_asc_pack_smaller_splits_must_be_in_split100(tiny_tau, tmp_path, capsys):
    tau = tiny_tau("tau22")
    _edit(os.path.join(tau, "split25.csv"), "bus-lyon-1-10-0-a", "park-lyon-4-40-2-c")  # a test file
    code, out = _asc_pack(tau, tmp_path / "out", capsys)
    assert (code, out.err) == (2, f"sonolab asc-pack: error: {tau}/split25.csv, line 2, field 'filename': "
                                  "'audio/park-lyon-4-40-2-c.wav' is not in split100.csv\n")
