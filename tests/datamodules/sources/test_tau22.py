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


def test_read_tau_meta_checks_device(tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_text("filename\tscene_label\tidentifier\tsource_label\naudio/bus-lyon-1-2-0-b.wav\tbus\tlyon-1\tc\n")
    with pytest.raises(ValueError, match="source_label"):
        read_tau_meta(str(meta))
