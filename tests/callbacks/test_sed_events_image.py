"""The SED events figure callback: which clips it draws, post-processed as the task does, and the image it logs."""
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from callbacks.sed_events_image import SEDEventsImage

RATE, SAMPLES, FRAMES = 800, 1600, 10  # 2 s clips, 10 frames of 0.2 s


class _Task(pl.LightningModule):
    """Scores class 1 active on frames 2-5 plus a one-frame spike on class 2 (a 3-frame median filter removes it)."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = lambda audio: audio.reshape(len(audio), 1, 16, SAMPLES // 16)

    def forward(self, audio, embeddings=None):
        strong = torch.full((len(audio), 3, FRAMES), 0.1)
        strong[:, 1, 2:6] = 0.9
        strong[:, 2, 7] = 0.95
        return strong, strong.amax(dim=2)

    def windows(self):
        return (3, 3, 3)

    def validation_step(self, batch, batch_idx):
        return None


class _Data(pl.LightningDataModule):
    def __init__(self, sample_rate: int = RATE) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.class_names = ("alarm", "dog", "speech")
        self.encoder = SimpleNamespace(frame_hop=0.2)

    def val_dataloader(self):
        strong = torch.zeros(3, FRAMES)
        strong[1, 2:6] = 1
        rows = [{"audio": torch.randn(SAMPLES), "strong": strong, "has_strong": torch.tensor(i != 0),
                 "name": f"clip_{i}.wav"} for i in range(6)]
        return DataLoader(rows, batch_size=2)


@pytest.mark.slow
def test_draws_the_first_strong_clips_with_filtered_scores_and_logs_val_events(tmp_path):
    callback = SEDEventsImage(clips=3)
    trainer = pl.Trainer(accelerator="cpu", logger=pl.loggers.TensorBoardLogger(str(tmp_path), name="sed"),
                         callbacks=[callback], enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(_Task(), datamodule=_Data(), verbose=False)
    assert [c.name for c in callback.examples] == ["clip_1.wav", "clip_2.wav", "clip_3.wav"]  # clip_0: weak only
    clip = callback.examples[0]
    assert clip.mel.shape == (16, 100) and clip.duration == 2.0 and clip.frame_hop == 0.2
    np.testing.assert_allclose(clip.probs[1], [0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(clip.probs[2], 0.1, rtol=1e-6)  # the spike is median-filtered away
    assert callback.last.dtype == np.uint8 and callback.last.ndim == 3 and callback.last.shape[2] == 3
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["val/events"]
    image = events.Images("val/events")[0]
    assert (image.height, image.width) == callback.last.shape[:2]
