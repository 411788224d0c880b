"""The AudioSet-strong datamodule on the demo look-alike (real table formats, community-format HDF5 files)."""
import csv
import os
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from datamodules.format.hdf5 import AudioH5
from datamodules.format.strong_logits import LogitsFileError, LogitsFileWriter
from datamodules.sources import synth
from datamodules.sources.audioset_strong import default_paths
from datamodules.sources.demo_strong import ABSENT, EVAL_CLIPS, EVAL_ONLY, TRAIN_CLIPS, TRAIN_ONLY, demo_ytid
from datamodules.strong import AudioSetStrongDataModule, MissingClipsWarning, TeacherFrames
from metrics.sed import ReferenceSet

# The demo tables list a few clips that the audio files lack (as real downloads do): every split warns once.
pytestmark = pytest.mark.filterwarnings("ignore::datamodules.strong.clips.MissingClipsWarning")


@pytest.fixture(scope="module")
def demo(demo_data):
    """(root of the AudioSet-strong demo, {split: {clip id: (DESED file name, DESED events)}} of the packed clips)."""
    root, summary = demo_data
    packed = {}
    for split, count in (("train", TRAIN_CLIPS), ("val", EVAL_CLIPS)):
        events = {}
        with open(os.path.join(root, "events", "metadata", f"{split}_strong.tsv"), newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                events.setdefault(row["filename"], [])
                if row["event_label"]:
                    events[row["filename"]].append((float(row["onset"]), float(row["offset"]), row["event_label"]))
        packed[split] = {f"Y{demo_ytid(split, n)}.mp3": (n, events[n]) for n in sorted(events)[:count]}
    assert summary.h5_files["as_strong_train"].endswith("balanced_train_segments_mp3.hdf")
    return os.path.join(root, "audioset_strong"), packed


def _datamodule(root, **kwargs):
    args = dict(train_h5=os.path.join(root, "balanced_train_segments_mp3.hdf"),
                val_h5=os.path.join(root, "eval_segments_mp3.hdf"), test_h5=os.path.join(root, "eval_segments_mp3.hdf"),
                sample_rate=16000, clip_seconds=4.0, frames=100, batch_size=4, num_workers=0, num_samples=24)
    args.update(kwargs)
    return AudioSetStrongDataModule(**default_paths(root), **args)


def test_label_space_from_the_tables(demo):
    dm = _datamodule(demo[0])
    assert dm.class_names == sorted(c for c in synth.EVENT_CLASSES if c != EVAL_ONLY)
    assert dm.evaluated_class_names == sorted(c for c in synth.EVENT_CLASSES if c != TRAIN_ONLY)
    assert dm.metric_class_names == sorted(set(synth.EVENT_CLASSES) - {TRAIN_ONLY, EVAL_ONLY})
    assert [dm.class_names[c] for c in dm.metric_classes] == dm.metric_class_names and dm.num_classes == 7
    assert dm.encoder.n_frames == 100 and dm.encoder.frame_hop == pytest.approx(0.04)


def test_training_batches_follow_the_tables(demo, one_thread):
    root, packed = demo
    dm = _datamodule(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    missing = [str(w.message) for w in caught if issubclass(w.category, MissingClipsWarning)]
    assert len(missing) == 2 and "AudioSet strong train:" in missing[0] and "AudioSet strong val:" in missing[1]
    for (absent, total), message in zip(_absent(root, packed), missing):
        assert 0 < absent <= ABSENT and f"{absent} of {total} segments" in message and "are skipped" in message
    dataset = dm.dataset("train")
    labelled = {name for name, (_, events) in packed["train"].items() if any(e[2] != EVAL_ONLY for e in events)}
    assert set(dataset.clips.names) == labelled and len(dataset) < TRAIN_CLIPS, "clips without labels left out"

    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (4, 64000) and batch["audio"].dtype == torch.float32
    assert batch["strong"].shape == (4, 7, 100) and batch["strong"].dtype == torch.float32
    assert len(batch["name"]) == 4 and "teacher_logits" not in batch
    h5 = AudioH5(os.path.join(root, "balanced_train_segments_mp3.hdf"))
    for k, name in enumerate(batch["name"]):
        # the demo writes some events as two overlapping rows: merged, the targets are those of the DESED events
        events = [e for e in packed["train"][name][1] if e[2] != EVAL_ONLY]
        expected = dm.encoder.encode_strong(events).T
        np.testing.assert_array_equal(batch["strong"][k].numpy(), expected)
        np.testing.assert_allclose(batch["audio"][k].numpy(), h5.waveform(h5.index_of(name), 16000, 64000))


def _absent(root, packed):
    """(segments without audio, segments) of the train and eval tables of the demo."""
    counts = []
    for table, split in (("audioset_train_strong.tsv", "train"), ("audioset_eval_strong.tsv", "val")):
        with open(os.path.join(root, table)) as f:
            segments = {line.split("\t")[0] for line in f.read().splitlines()[1:]}
        counts.append((sum(f"Y{s.rsplit('_', 1)[0]}.mp3" not in packed[split] for s in segments), len(segments)))
    return counts


def test_balanced_sampler_weights_and_ddp_shares(demo):
    dm = _datamodule(demo[0])
    dataset = dm.dataset("train")
    frames = np.stack([dataset.targets(i).sum(axis=1) for i in range(len(dataset))])  # (N, C) active frames
    class_weights = 1000.0 / (30.0 + frames.sum(axis=0))
    sampler = dm.train_sampler()
    np.testing.assert_allclose(sampler.weights.numpy(), frames @ class_weights)
    drawn = list(sampler)
    assert len(drawn) == 24 and all(0 <= i < len(dataset) for i in drawn)
    assert list(dm.train_sampler()) == drawn, "deterministic"
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    share = dm.train_sampler()
    assert share.num_replicas == 2 and list(share) == drawn[1::2]
    uniform = _datamodule(demo[0], sampler="random").train_sampler()
    assert torch.equal(uniform.weights, torch.ones(len(dataset), dtype=torch.float64))


def _pattern(frames):
    return (np.arange(frames) % 4)[None, :] / 4  # exact in float16


def _write_teacher(path, names, shape, class_names=None):
    writer = LogitsFileWriter(str(path), *shape, class_names)
    writer.append(names, np.stack([np.full(shape, i, np.float32) + _pattern(shape[1]) for i in range(len(names))]))
    return writer.close()


def test_teacher_logits_are_matched_by_youtube_id(demo, tmp_path, one_thread):
    root = demo[0]
    names = list(_datamodule(root).dataset("train").clips.names)
    # PretrainedSED's files name clips 'Y<ytid>' (no extension); rows in another order than the audio file
    stored = [n[:-4] for n in reversed(names)]
    dm = _datamodule(root, teacher_logits=_write_teacher(tmp_path / "t.h5", stored, (7, 100)))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["teacher_logits"].shape == (4, 7, 100) and batch["teacher_logits"].dtype == torch.float32
    for k, name in enumerate(batch["name"]):
        row = stored.index(name[:-4])
        expected = np.broadcast_to(row + _pattern(100), (7, 100))
        np.testing.assert_array_equal(batch["teacher_logits"][k].numpy(), expected)
    assert "teacher_logits" not in next(iter(dm.val_dataloader()))


@pytest.mark.bad_input
def test_teacher_files_that_do_not_fit(demo, tmp_path):
    root = demo[0]
    names = list(_datamodule(root).dataset("train").clips.names)
    short = _write_teacher(tmp_path / "short.h5", names[1:], (7, 100))
    with pytest.raises(LogitsFileError, match=rf"short.h5: 1 of {len(names)} training clips have no logits \(e.g. "
                                              rf"\['{names[0]}'\]\)"):
        _datamodule(root, teacher_logits=short).setup("fit")
    wrong = _write_teacher(tmp_path / "wrong.h5", names, (7, 50))
    with pytest.raises(LogitsFileError, match=r"wrong.h5: logits of shape \(7, 50\) per clip, expected \(7, 100\)"):
        _datamodule(root, teacher_logits=wrong).setup("fit")
    classes = _datamodule(root).class_names
    swapped = _write_teacher(tmp_path / "swapped.h5", names, (7, 100), classes[:5] + classes[6:4:-1])
    with pytest.raises(LogitsFileError, match=rf"swapped.h5: its class_names differ from the trained classes at "
                                              rf"column 5 \(\['{classes[6]}'\] vs \['{classes[5]}'\]\)"):
        _datamodule(root, teacher_logits=swapped).setup("fit")


def test_teacher_rows_match_by_video_and_start_where_both_ids_have_one(tmp_path):
    path = _write_teacher(tmp_path / "t.h5", ["Y--PJHxphWEs_30000_40000.mp3", "YYxlGt805lTA", "Yab_cd-efgh__0_10000"],
                          (2, 3))
    rows = TeacherFrames(path).rows_of(["Y--PJHxphWEs.mp3", "YYxlGt805lTA_5000_15000.mp3", "05/YYxlGt805lTA.mp3",
                                        "Yab_cd-efgh__20000_30000.mp3", "Yab_cd-efgh__0_10000.mp3", "Yunknown1234.mp3"])
    assert rows.tolist() == [0, 1, 1, -1, 2, -1]


def test_reference_is_restricted_to_the_metric_classes(demo):
    root, packed = demo
    dm = _datamodule(root)
    ground_truth, durations = dm.reference("val")
    metric = set(dm.metric_class_names)
    expected = {(name, on, off, label) for name, (_, events) in packed["val"].items()
                for on, off, label in events if label in metric}
    assert set(map(tuple, ground_truth.itertuples(index=False))) == expected and len(ground_truth) == len(expected)
    assert set(durations["filename"]) == {e[0] for e in expected} and (durations["duration"] == 4.0).all()
    assert set(durations["filename"]) <= set(dm.dataset("val").clips.names)
    reference = ReferenceSet(ground_truth, durations)  # no overlapping events of one class
    assert set(reference.class_names) <= metric
    assert dm.reference("test")[0].equals(ground_truth)


def test_eval_and_predict_items(demo, one_thread):
    root, packed = demo
    dm = _datamodule(root, predict_h5=os.path.join(root, "eval_segments_mp3.hdf"))
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["strong"].shape == (4, 7, 100) and batch["skipped"].tolist() == [0, 0, 0, 0]
    assert len(dm.dataset("predict")) == len(dm.dataset("val"))
    assert len(_datamodule(root).dataset("predict")) == len(dm.dataset("train")), "default: the training clips"


@pytest.mark.bad_input
def test_missing_stage_files_and_bad_options(demo):
    with pytest.raises(ValueError, match="no train_h5 file configured for the train stage"):
        _datamodule(demo[0], train_h5=None).setup("fit")
    with pytest.raises(ValueError, match="sampler must be 'balanced' or 'random'"):
        _datamodule(demo[0], sampler="uniform")
    with pytest.raises(ValueError, match="a reference exists for 'val' and 'test'"):
        _datamodule(demo[0]).reference("train")
