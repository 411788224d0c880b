"""One undecodable clip never stops an epoch: for tagging, SED and ASC a tiny fit replaces the garbage training clip
(logging ``train/skipped_clips``), a validation with ``eval_on_decode_error='skip'`` scores every other clip and logs
``val/skipped_clips``, and a test with the default ``'raise'`` stops with an error naming the file and the clip."""
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl

from datamodules.asc import ASCDataModule
from datamodules.datasets import SKIPPED, SkippedClipWarning
from datamodules.format.audio_io import AudioDecodeError, encode_audio
from datamodules.format.hdf5 import ClipRecord, write_h5
from datamodules.sed.datamodule import SEDDataModule, SEDSource
from datamodules.tagging import TaggingDataModule
from experiments.asc import SceneClassification
from experiments.sed import SoundEventDetection
from experiments.tagging import AudioTagging
from metrics.asc import DEVICES, SCENE_CLASSES
from tests.conftest import write_tone_h5
from tests.datamodules.test_datasets import corrupt_clips

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("one_thread")]


class SeenTrainingRows(pl.Callback):
    """Names and ``skipped`` counts of every training row."""

    def __init__(self) -> None:
        self.names, self.skipped = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.names += list(batch["name"])
        self.skipped += batch[SKIPPED].tolist()


def _trainer(**kwargs) -> pl.Trainer:
    args = dict(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    return pl.Trainer(**{**args, **kwargs})


def _fit(task, data, **kwargs):
    """Fits one epoch; returns the trainer, the rows seen and the skipped-clip warnings of this process."""
    seen = SeenTrainingRows()
    trainer = _trainer(callbacks=[seen], **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(task, datamodule=data)
    return trainer, seen, sorted(str(w.message) for w in caught if w.category is SkippedClipWarning)


def _assert_skipped_once(trainer, seen, messages, train, train_name, val, val_name, n_train):
    assert float(trainer.callback_metrics["train/skipped_clips"]) == 1.0
    assert float(trainer.callback_metrics["val/skipped_clips"]) == 1.0
    # the garbage training clip was replaced by another clip of its file: every row trained on is real audio
    assert len(seen.names) == n_train and train_name not in seen.names and sum(seen.skipped) == 1
    assert len(messages) == 2  # once per clip
    assert f"{train}: clip" in messages[0] and train_name in messages[0] and "replaced" in messages[0]
    assert f"{val}: clip" in messages[1] and val_name in messages[1] and "left out" in messages[1]


# ---------------------------------------------------------------------------------------------------------- tagging
def test_tagging_skips_in_training_and_validation_and_test_raises(tmp_path):
    train = corrupt_clips(write_tone_h5(str(tmp_path / "train.h5"), 12, seed=0, seconds=0.25, codec="flac"), [5])
    val = corrupt_clips(write_tone_h5(str(tmp_path / "val.h5"), 6, seed=1, seconds=0.25, codec="flac"), [2])
    data = TaggingDataModule(train_h5=train, val_h5=val, clip_seconds=0.25, batch_size=4, num_workers=0,
                             eval_on_decode_error="skip")
    task = AudioTagging(model="demo_cnn", num_classes=4)
    trainer, seen, messages = _fit(task, data)
    _assert_skipped_once(trainer, seen, messages, train, "clip_0005.wav", val, "clip_0002.wav", 12)
    scored = list(task.outputs["val"].merged()["name"])
    assert scored == [f"clip_{i:04d}.wav" for i in (0, 1, 3, 4, 5)]  # val/mAP is a number of these five clips
    with pytest.raises(AudioDecodeError, match=rf"{val}: clip 2 \('clip_0002.wav'\): cannot decode"):
        _trainer().test(task, datamodule=TaggingDataModule(test_h5=val, clip_seconds=0.25, num_workers=0))


def test_tagging_counts_skipped_clips_across_workers(tmp_path):
    train = corrupt_clips(write_tone_h5(str(tmp_path / "train.h5"), 12, seed=0, seconds=0.25, codec="flac"), [1, 9])
    data = TaggingDataModule(train_h5=train, val_h5=train, clip_seconds=0.25, batch_size=4, num_workers=2)
    trainer, seen, _ = _fit(AudioTagging(model="demo_cnn", num_classes=4), data, limit_val_batches=0)
    assert float(trainer.callback_metrics["train/skipped_clips"]) == 2.0
    assert len(seen.names) == 12 and not {"clip_0001.wav", "clip_0009.wav"} & set(seen.names)


# ---------------------------------------------------------------------------------------------------------- SED
def _events_h5(path: str, clips: int, seed: int) -> str:
    """``clips`` 1 s flac clips at 16 kHz, each with one strong event of class a or b."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(clips):
        wave = 0.1 * rng.standard_normal(16000)
        records.append(ClipRecord(f"ev{i:02d}.wav", encode_audio(wave, 16000, "flac"), 1.0, weak=[i % 2],
                                  events=[(0.2, 0.7, i % 2, 1.0)]))
    write_h5(path, records, clips, codec="flac", sample_rate=16000, class_names=["a", "b"])
    return path


def test_sed_skips_in_training_and_validation_and_test_raises(tmp_path):
    train = corrupt_clips(_events_h5(str(tmp_path / "train.h5"), 8, seed=0), [2])
    val = corrupt_clips(_events_h5(str(tmp_path / "val.h5"), 4, seed=1), [1])
    common = dict(classes=["a", "b"], clip_seconds=1.0, val_batch_size=4, num_workers=0)
    data = SEDDataModule([SEDSource("strong", train, 4, "strong")], val, eval_on_decode_error="skip", **common)
    task = SoundEventDetection(num_classes=2, model_overrides=dict(channels=[8, 8, 16, 16, 16, 16, 16], rnn_hidden=16),
                               median_windows=1, warmup_epochs=0, cosine_start=0, cosine_end=1)
    trainer, seen, messages = _fit(task, data)
    _assert_skipped_once(trainer, seen, messages, train, "ev02.wav", val, "ev01.wav", 8)
    assert list(task._outputs["val"].merged()["name"]) == ["ev00.wav", "ev02.wav", "ev03.wav"]
    with pytest.raises(AudioDecodeError, match=rf"{val}: clip 1 \('ev01.wav'\): cannot decode"):
        _trainer().test(task, datamodule=SEDDataModule([SEDSource("strong", train, 4, "strong")], val, test_h5=val,
                                                       **common))


# ---------------------------------------------------------------------------------------------------------- ASC
def _scenes_h5(path: str, clips: int) -> str:
    """``clips`` 1 s flac noise clips at 44.1 kHz with scene and device labels, TAU-named."""
    rng = np.random.default_rng(0)
    records = [ClipRecord(f"audio/{SCENE_CLASSES[i % 10]}-lisbon-{i}-0-0-a.wav",
                          encode_audio(0.1 * rng.standard_normal(44100), 44100, "flac"), 1.0, scene=i % 10, device=0)
               for i in range(clips)]
    write_h5(path, records, clips, codec="flac", sample_rate=44100, scene_names=SCENE_CLASSES, device_names=DEVICES,
             name_width=64)
    return path


def test_asc_skips_in_training_and_validation_and_test_raises(tmp_path):
    (tmp_path / "train").mkdir()
    train = corrupt_clips(_scenes_h5(str(tmp_path / "train" / "scenes.h5"), 12), [4])
    val = corrupt_clips(_scenes_h5(str(tmp_path / "val.h5"), 6), [3])
    data = ASCDataModule(train, test_h5=val, batch_size=4, num_workers=0, eval_on_decode_error="skip")
    tiny = dict(model_overrides=dict(base_channels=8, channels_multiplier=2.0, n_blocks=[1, 1, 1],
                                     strides={"b2": [2, 2], "b3": [2, 2]}),
                frontend_overrides=dict(n_mels=64, n_fft=1024, win_length=1024, hop_length=1000, freqm=0))
    task = SceneClassification(test_precision="fp32", warmup_steps=1, **tiny)
    trainer, seen, messages = _fit(task, data)
    name = "audio/{}-lisbon-{}-0-0-a.wav".format
    _assert_skipped_once(trainer, seen, messages, train, name(SCENE_CLASSES[4], 4), val, name(SCENE_CLASSES[3], 3), 12)
    scored = sorted(task.metrics["val"].clips.merged()["name"])
    assert scored == sorted(name(SCENE_CLASSES[i], i) for i in (0, 1, 2, 4, 5))
    with pytest.raises(AudioDecodeError, match=rf"{val}: clip 3 \('{name(SCENE_CLASSES[3], 3)}'\): cannot decode"):
        _trainer().test(task, datamodule=ASCDataModule(test_h5=val, batch_size=4, num_workers=0))
