"""SEDDataModule on the demo events files and tiny hand-made files: batches, targets, aliases, embeddings, DDP."""
import json
import os
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.format.audio_io import encode_audio
from datamodules.label_space import LabelSpaceError
from datamodules.format.hdf5 import AudioH5, ClipRecord, write_h5
from datamodules.sed import DESED_CLASSES, MAESTRO_REAL_CLASSES, EventLabelEncoder
from datamodules.sed.datamodule import SEDDataModule, SEDSource
from datamodules.sed.embeddings import FrameEmbeddings, write_frame_embeddings
from metrics.sed.psds import ReferenceSet
from tests.conftest import run_script

KEYS = {"audio", "strong", "weak", "mask", "has_strong", "has_weak", "source", "skipped", "name"}


def _demo(demo_data):
    root = demo_data[0]
    return {split: os.path.join(root, f"events_{split}.h5") for split in ("train", "val", "test")}, \
        os.path.join(root, "events", "classes.txt")


def _demo_module(demo_data, **kwargs):
    files, classes = _demo(demo_data)
    sources = kwargs.pop("sources", [SEDSource("strong", files["train"], 4, "strong"),
                                     SEDSource("weak", files["val"], 2, "weak"),
                                     SEDSource("unlabeled", files["test"], 3, "none")])
    return SEDDataModule(sources, files["val"], test_h5=files["test"], classes=classes, sample_rate=16000,
                         clip_seconds=4.0, seed=0, **kwargs)


def _encode_file_events(h5: AudioH5, encoder: EventLabelEncoder, i: int) -> np.ndarray:
    ev = h5.events(i)
    table = [(on, off, h5.class_names[c], conf) for on, off, c, conf in
             zip(ev["onset"], ev["offset"], ev["class"], ev["confidence"])]
    return encoder.encode_strong(table).T


def _tiny_h5(path, class_names, events, sample_rate=16000, seconds=1.0, waves=None, weak=None):
    """One clip per entry of ``events`` (a list of (onset, offset, class, confidence) lists)."""
    n = int(sample_rate * seconds)
    records = []
    for i, clip_events in enumerate(events):
        wave = waves[i] if waves is not None else np.zeros(n)
        records.append(ClipRecord(f"clip{i:02d}.wav", encode_audio(wave, sample_rate, "pcm16"), seconds,
                                  weak=weak[i] if weak else sorted({e[2] for e in clip_events}), events=clip_events))
    write_h5(str(path), records, len(records), codec="pcm16", sample_rate=sample_rate, class_names=class_names)
    return str(path)


def test_demo_batches_shapes_and_targets(demo_data):
    dm = _demo_module(demo_data)
    assert dm.num_classes == 8 and dm.class_names[0] == "am_noise"
    assert dm.encoder.n_frames == 62 and dm.encoder.frame_hop == pytest.approx(0.064)
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    assert set(batch) == KEYS and len(loader) == 60 // 3  # the shortest stream: 60 unlabeled clips, 3 per batch
    assert batch["audio"].shape == (9, 64000) and batch["audio"].dtype == torch.float32
    assert batch["strong"].shape == (9, 8, 62) and batch["strong"].dtype == torch.float32
    assert batch["weak"].shape == (9, 8) and batch["mask"].shape == (9, 8) and batch["mask"].dtype == torch.bool
    assert batch["source"].tolist() == [0] * 4 + [1] * 2 + [2] * 3
    assert batch["has_strong"].tolist() == [True] * 4 + [False] * 5
    assert batch["has_weak"].tolist() == [False] * 4 + [True] * 2 + [False] * 3
    assert dm.source_blocks() == [slice(0, 4), slice(4, 6), slice(6, 9)]
    assert dm.source_names == ["strong", "weak", "unlabeled"] and dm.source_domains == ["desed"] * 3

    files, _ = _demo(demo_data)
    train, val = AudioH5(files["train"]), AudioH5(files["val"])
    for row, name in enumerate(batch["name"][:4]):  # strong rows: the encoder's encoding of the file's events
        i = train.index_of(name)
        expected = _encode_file_events(train, dm.encoder, i)
        np.testing.assert_array_equal(batch["strong"][row].numpy(), expected)
        np.testing.assert_array_equal(batch["weak"][row].numpy(), expected.max(axis=1))
        # resampled 32 kHz -> 16 kHz
        np.testing.assert_allclose(batch["audio"][row].numpy(), train.waveform(i, 16000), atol=1e-6)
    for row, name in zip(range(4, 6), batch["name"][4:6]):  # weak rows: the file's weak targets, no frame targets
        np.testing.assert_array_equal(batch["weak"][row].numpy(), val.weak_target(val.index_of(name)))
        assert batch["strong"][row].abs().sum() == 0
    assert batch["strong"][6:].abs().sum() == 0 and batch["weak"][6:].abs().sum() == 0


def test_demo_validation_batches_and_reference(demo_data):
    dm = _demo_module(demo_data)
    batch = next(iter(dm.val_dataloader()))
    assert batch["audio"].shape == (24, 64000) and batch["strong"].shape == (24, 8, 62)
    assert batch["mask"].all() and batch["has_strong"].all() and not batch["has_weak"].any()
    assert (batch["source"] == -1).all()
    ground_truth, durations = dm.reference("val")
    assert list(ground_truth.columns) == ["filename", "onset", "offset", "event_label"]
    assert list(durations.columns) == ["filename", "duration"] and len(durations) == 60
    assert (durations["duration"] == 4.0).all() and durations["filename"].iloc[0] == "val_0000.wav"
    table = pd.read_csv(os.path.join(demo_data[0], "events", "metadata", "val_strong.tsv"), sep="\t")
    key = ["filename", "onset", "offset", "event_label"]
    pd.testing.assert_frame_equal(ground_truth.sort_values(key).reset_index(drop=True),
                                  table.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert ReferenceSet(ground_truth, durations).clip_ids[0] == "val_0000"
    for row, name in enumerate(batch["name"]):  # the reference encodes to the batch's frame targets
        events = ground_truth[ground_truth["filename"] == name]
        np.testing.assert_array_equal(batch["strong"][row].numpy(), dm.encoder.encode_strong(events).T)


def test_resampling_32k_to_16k_keeps_a_tone(tmp_path):
    t32 = np.arange(32000) / 32000
    path = _tiny_h5(tmp_path / "tone.h5", ["a"], [[]], sample_rate=32000, waves=[0.5 * np.sin(2 * np.pi * 1000 * t32)],
                    weak=[[0]])
    dm = SEDDataModule([SEDSource("s", path, 1, "weak")], path, classes=["a"], sample_rate=16000, clip_seconds=1.0)
    audio = next(iter(dm.train_dataloader()))["audio"][0].numpy()
    t16 = np.arange(16000) / 16000
    assert audio.shape == (16000,)
    np.testing.assert_allclose(audio[200:-200], 0.5 * np.sin(2 * np.pi * 1000 * t16)[200:-200], atol=2e-3)


def test_maestro_and_desed_rows_in_the_dcase24_label_space(tmp_path):
    talk, announce = MAESTRO_REAL_CLASSES.index("people talking"), MAESTRO_REAL_CLASSES.index("announcement")
    maestro = _tiny_h5(tmp_path / "maestro.h5", MAESTRO_REAL_CLASSES,
                       [[(0.0, 0.5, talk, 0.7), (0.25, 1.0, announce, 0.9)]] * 2)
    dog = DESED_CLASSES.index("Dog")
    desed = _tiny_h5(tmp_path / "desed.h5", DESED_CLASSES, [[(0.1, 0.3, dog, 1.0)]] * 2)
    dm = SEDDataModule([SEDSource("maestro", maestro, 1, "strong", domain="maestro"),
                        SEDSource("synth", desed, 1, "strong")], desed, clip_seconds=1.0)
    assert dm.num_classes == 27 and dm.source_domains == ["maestro", "desed"]
    batch = next(iter(dm.train_dataloader()))
    speech, classes = DESED_CLASSES.index("Speech"), dm.class_names
    frames = dm.encoder.n_frames  # 62 // 4 = 15 frames of 0.064 s
    strong = batch["strong"][0]
    assert strong[speech].max() == pytest.approx(0.9) and batch["weak"][0, speech] == pytest.approx(0.9)
    np.testing.assert_allclose(strong[speech].numpy(), np.maximum(strong[classes.index("people talking")],
                                                                  strong[classes.index("announcement")]).numpy())
    assert strong[classes.index("people talking"), 0] == pytest.approx(0.7) and strong.shape == (27, frames)
    assert batch["mask"][0].tolist() == [c in MAESTRO_REAL_CLASSES or c in ("Speech", "Dishes") for c in classes]
    assert batch["mask"][1].tolist() == [c in DESED_CLASSES for c in classes]
    assert batch["strong"][1, dog].sum() > 0 and batch["strong"][1, 10:].sum() == 0


def test_random_crops_shift_events_and_change_per_epoch(tmp_path):
    ramp = np.arange(16000) / 32768.0  # sample k holds k / 32768: the crop offset can be read off the audio
    path = _tiny_h5(tmp_path / "long.h5", ["a"], [[(1.2, 1.5, 0, 1.0)]] * 4, sample_rate=8000, seconds=2.0,
                    waves=[ramp] * 4)
    dm = SEDDataModule([SEDSource("s", path, 2, "strong")], path, classes=["a"], sample_rate=8000, clip_seconds=1.0,
                       hop_length=64, pooling=2, seed=3)
    dataset = dm.train_dataset()
    sampler = dm.train_sampler()
    starts = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        for indices in sampler:
            batch = dataset[indices]
            for row, index in enumerate(indices):
                start = int(round(float(batch["audio"][row, 0]) * 32768))
                starts[epoch, index] = start
                shifted = [(1.2 - start / 8000, 1.5 - start / 8000, "a")]
                np.testing.assert_array_equal(batch["strong"][row].numpy(), dm.encoder.encode_strong(shifted).T)
                assert batch["audio"].shape[1] == 8000
    assert len(set(starts.values())) > 2 and all(0 <= s <= 8000 for s in starts.values())
    sampler.set_epoch(1)
    again = next(iter(sampler))
    assert int(round(float(dataset[again]["audio"][0, 0]) * 32768)) == starts[1, again[0]]  # reproducible


@pytest.mark.bad_input
def test_frame_embeddings_lookup(demo_data, tmp_path):
    files, _ = _demo(demo_data)
    rng = np.random.default_rng(0)
    paths, arrays = {}, {}
    for split in ("train", "val"):
        names = list(AudioH5(files[split]).names)
        arrays[split] = rng.standard_normal((len(names), 4, 10)).astype(np.float16)
        paths[split] = str(tmp_path / f"{split}_emb.h5")
        write_frame_embeddings(paths[split], names[::-1], arrays[split][::-1])  # stored order does not matter
    dm = _demo_module(demo_data, sources=[SEDSource("strong", files["train"], 2, "strong", embeddings=paths["train"])],
                      val_embeddings=paths["val"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["embeddings"].shape == (2, 4, 10) and batch["embeddings"].dtype == torch.float32
    train = AudioH5(files["train"])
    for row, name in enumerate(batch["name"]):
        np.testing.assert_array_equal(batch["embeddings"][row].numpy(), arrays["train"][train.index_of(name)])
    assert next(iter(dm.val_dataloader()))["embeddings"].shape == (24, 4, 10)

    lookup = FrameEmbeddings(paths["val"])
    assert lookup.shape == (4, 10) and len(lookup) == 60
    with pytest.raises(KeyError, match=r"val_emb\.h5: no frame embeddings for clip 'nope\.wav'"):
        lookup.get("nope.wav")
    partial = str(tmp_path / "partial.h5")
    write_frame_embeddings(partial, ["train_0000.wav"], arrays["train"][:1])
    dm = _demo_module(demo_data, sources=[SEDSource("strong", files["train"], 2, "strong", embeddings=partial)],
                      val_embeddings=paths["val"])
    with pytest.raises(KeyError, match=r"partial\.h5: no frame embeddings for 239 clip\(s\) of strong .*train_0001"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match="val_embeddings: the training sources have frame embeddings"):
        _demo_module(demo_data, sources=[SEDSource("s", files["train"], 2, "strong", embeddings=paths["train"])]
                     ).val_dataloader()


@pytest.mark.parametrize("change, message", [
    (dict(sources=[]), "at least one training source"),
    (dict(sources=[SEDSource("a", "x.h5", 2, "strong"), SEDSource("a", "y.h5", 2, "weak")]), "names must be unique"),
    (dict(sources=[{"name": "a", "h5": "x.h5", "batch_size": 2, "labels": "soft"}]), r"sources\[0\] \(a\): labels"),
    (dict(sources=[{"name": "a", "h5": "x.h5", "batch_size": 0, "labels": "weak"}]), "batch_size must be >= 1"),
    (dict(sources=[{"name": "a", "h5": "x.h5", "batch": 2}]), r"sources\[0\]: .*unexpected keyword"),
    (dict(classes="no_such_preset"), "classes: expected a preset name"),
    (dict(sources=[SEDSource("a", "x.h5", 2, "strong", embeddings="e.h5"), SEDSource("b", "y.h5", 2, "weak")]),
     r"embeddings for every source or for none.*\['a'\]"),
])
@pytest.mark.bad_input
def test_bad_settings(change, message):
    kwargs = dict(sources=[SEDSource("a", "x.h5", 2, "strong")], val_h5="v.h5")
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        SEDDataModule(**kwargs)


@pytest.mark.bad_input
def test_bad_files_name_the_file(tmp_path):
    no_events = str(tmp_path / "weak_only.h5")
    write_h5(no_events, [ClipRecord("c.wav", encode_audio(np.zeros(160), 16000, "pcm16"), 0.01, [0])], 1,
             codec="pcm16", sample_rate=16000, class_names=["a"])
    with h5py.File(no_events, "a") as f:
        del f["events"]
    dm = SEDDataModule([SEDSource("synth", no_events, 1, "strong")], no_events, classes=["a"])
    with pytest.raises(ValueError, match=r"synth \(.*weak_only\.h5\): labels='strong' needs strong events"):
        dm.train_dataloader()
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        SEDDataModule([SEDSource("s", str(tmp_path / "missing.h5"), 1, "weak")], no_events).train_dataloader()
    strict = SEDDataModule([SEDSource("s", no_events, 1, "weak")], no_events, classes=["b"], strict_classes=True)
    with pytest.raises(ValueError, match=r"s \(.*weak_only\.h5\): classes \['a'\] are not in the label space"):
        strict.train_dataloader()


@pytest.mark.bad_input
def test_evaluation_classes_outside_the_label_space_are_an_error_naming_them(tmp_path):
    talk, car = MAESTRO_REAL_CLASSES.index("people talking"), MAESTRO_REAL_CLASSES.index("car")
    maestro = _tiny_h5(tmp_path / "maestro_val.h5", MAESTRO_REAL_CLASSES,
                       [[(0.0, 0.5, talk, 1.0), (0.2, 0.6, car, 1.0)]])
    desed = _tiny_h5(tmp_path / "desed.h5", DESED_CLASSES, [[(0.1, 0.3, 0, 1.0)]] * 2)
    sources = [SEDSource("synth", desed, 1, "strong")]
    dm = SEDDataModule(sources, maestro, classes="desed", clip_seconds=1.0)
    with pytest.raises(LabelSpaceError, match=r"val_h5 \(.*maestro_val\.h5\): classes \['cutlery and dishes', "
                                              r"'furniture dragging', 'people talking', .*'birds_singing'\] are not in "
                                              r"the label space \['Alarm_bell_ringing', .*'Vacuum_cleaner'\]; .*set "
                                              r"eval_other_classes='ignore'"):
        dm.val_dataloader()
    lenient = SEDDataModule(sources, maestro, classes="desed", clip_seconds=1.0, eval_other_classes="ignore")
    with pytest.warns(UserWarning, match=r"'people talking', 'children voices', 'announcement'\] still feed their "
                                         r"alias targets"):
        batch = next(iter(lenient.val_dataloader()))
    assert batch["strong"][0, DESED_CLASSES.index("Speech")].max() == 1.0  # the alias still applies
    full = SEDDataModule(sources, maestro, classes="dcase24", clip_seconds=1.0)  # every MAESTRO class in the space
    batch = next(iter(full.val_dataloader()))
    assert batch["strong"][0, full.class_names.index("car")].max() == 1.0
    assert batch["strong"][0, DESED_CLASSES.index("Speech")].max() == 1.0


def test_config_schema_parses_sources(tmp_path):
    from jsonargparse import ArgumentError, ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(SEDDataModule, "data")
    config = parser.parse_string(textwrap.dedent("""
        data:
          sources:
            - {name: maestro, h5: m.h5, batch_size: 12, labels: strong, domain: maestro}
            - {name: weak, h5: w.h5, batch_size: 12, labels: weak}
          val_h5: v.h5
          classes: desed
    """))
    dm = parser.instantiate_classes(config).data
    assert [s.name for s in dm.sources] == ["maestro", "weak"] and dm.sources[1].domain == "desed"
    assert dm.num_classes == 10 and dm.hparams.sources[0]["batch_size"] == 12  # primitives in the checkpoint
    with pytest.raises(ArgumentError, match=r"(?s)labels.*Expected a typing.Literal\['strong', 'weak', 'none'\]"):
        parser.parse_string("data: {sources: [{name: a, h5: a.h5, batch_size: 2, labels: soft}], val_h5: v.h5}")


DDP_SCRIPT = """
import json, sys
import torch, pytorch_lightning as pl
from datamodules.sed.datamodule import SEDDataModule, SEDSource

out, a, b = sys.argv[1:4]

class Probe(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, index):
        self.seen.append([self.current_epoch, batch["name"], batch["source"].tolist()])
        return (self.w ** 2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_end(self):
        sampler = self.trainer.train_dataloader.sampler
        with open(f"{out}/rank{self.global_rank}.json", "w") as f:
            json.dump({"sampler": type(sampler).__name__, "rank": sampler.rank, "world": sampler.num_replicas,
                       "seen": self.seen}, f)

dm = SEDDataModule([SEDSource("a", a, 2, "strong"), SEDSource("b", b, 1, "weak")], a, classes=["a", "b"],
                   clip_seconds=0.1, seed=7)
trainer = pl.Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, num_sanity_val_steps=0)
trainer.fit(Probe(), datamodule=dm)
"""


@pytest.mark.slow
def test_real_two_process_ddp_keeps_the_sampler(tmp_path):
    """Lightning (use_distributed_sampler=True) must neither replace nor wrap the multi-source sampler."""
    from datamodules.sed.sampler import MultiSourceBatchSampler

    a = _tiny_h5(tmp_path / "a.h5", ["a", "b"], [[(0.0, 0.05, 0, 1.0)]] * 10, seconds=0.1)
    b = _tiny_h5(tmp_path / "b.h5", ["a", "b"], [[(0.0, 0.05, 1, 1.0)]] * 7, seconds=0.1)
    run_script(DDP_SCRIPT, tmp_path, tmp_path, a, b, timeout=120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    names = [f"clip{i:02d}.wav" for i in range(10)]
    for r, result in enumerate(ranks):
        assert (result["sampler"], result["rank"], result["world"]) == ("MultiSourceBatchSampler", r, 2)
        # 10 and 7 clips over 2 ranks: shares 5 and 3 -> min(5 // 2, 3 // 1) = 2 batches per epoch
        assert [epoch for epoch, _, _ in result["seen"]] == [0, 0, 1, 1]
        assert all(sources == [0, 0, 1] for _, _, sources in result["seen"])
        expected = MultiSourceBatchSampler([10, 7], [2, 1], num_replicas=2, rank=r, seed=7)
        for epoch in (0, 1):
            expected.set_epoch(epoch)
            got = [batch for e, batch, _ in result["seen"] if e == epoch]
            assert got == [[names[i] if i < 10 else names[i - 10] for i in idx] for idx in expected]
    for epoch in (0, 1):
        shares = [{(n, s) for e, batch, sources in result["seen"] if e == epoch for n, s in zip(batch, sources)}
                  for result in ranks]
        assert not shares[0] & shares[1]  # disjoint (clip, source) pairs across ranks
    epoch_batches = [[batch for e, batch, _ in ranks[0]["seen"] if e == epoch] for epoch in (0, 1)]
    assert epoch_batches[0] != epoch_batches[1]  # Lightning's set_epoch reshuffled


def test_a_source_of_several_files_is_sampled_as_one(tmp_path):
    synth = _tiny_h5(tmp_path / "synth.h5", list(DESED_CLASSES), [[(0.1, 0.5, 0, 1.0)]] * 5)
    real = _tiny_h5(tmp_path / "real.h5", list(DESED_CLASSES), [[(0.2, 0.6, 1, 1.0)]] * 3)
    weak = _tiny_h5(tmp_path / "weak.h5", list(DESED_CLASSES), [[]] * 4, weak=[[2]] * 4)
    dm = SEDDataModule([SEDSource("strong", [real, synth], 2, "strong"), SEDSource("weak", weak, 1, "weak")],
                       weak, classes="desed", clip_seconds=1.0)
    assert dm.source_sizes() == [8, 4]
    sampler = dm.train_sampler()
    batches = [dm.train_dataset()[b] for b in sampler]
    assert len(batches) == 4  # min(8 // 2, 4 // 1)
    seen = [name for b in batches for name, src in zip(b["name"], b["source"].tolist()) if src == 0]
    assert len(seen) == 8 and all(b["source"].tolist() == [0, 0, 1] for b in batches)
    # both files feed the strong source: Blender (real) and Alarm (synthetic) targets appear
    classes = {int(b["strong"][r].amax(dim=1).argmax()) for b in batches for r in range(2)}
    assert classes == {0, 1}
    with pytest.raises(ValueError, match="2 h5 files but 1 embeddings"):
        SEDDataModule([SEDSource("strong", [real, synth], 2, "strong", embeddings="e.h5")], weak, classes="desed")
