"""The tagging task: distillation and mixing stay consistent; a tiny fit learns; DDP scores every clip once."""
import csv
import json
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from datamodules.tagging import TaggingDataModule
from datamodules.teacher import write_teacher_logits
from experiments.tagging import AudioTagging
from tests.conftest import run_script


def _batch(b=6, n=8000, classes=4):
    torch.manual_seed(0)
    return {"audio": torch.randn(b, n), "target": (torch.rand(b, classes) > 0.5).float(),
            "teacher": torch.randn(b, classes) * 3, "teacher_weight": torch.tensor([1.0, 1, 0, 1, 1, 1]),
            "name": [f"c{i}" for i in range(b)]}


def test_mixup_mixes_labels_teacher_and_weights_with_one_draw(monkeypatch):
    task = AudioTagging(model="demo_cnn", num_classes=4, mixup_alpha=0.3)
    batch = _batch()
    lam, perm = torch.full((6,), 0.75), torch.tensor([1, 2, 3, 4, 5, 0])
    monkeypatch.setattr("experiments.tagging.draw_mix", lambda *a, **k: (lam, perm))
    spec, target, teacher, weight = task._train_inputs(batch)
    torch.testing.assert_close(target, 0.75 * batch["target"] + 0.25 * batch["target"][perm])
    probs = torch.sigmoid(batch["teacher"])
    torch.testing.assert_close(teacher, 0.75 * probs + 0.25 * probs[perm])
    assert weight.tolist() == [1, 0, 0, 1, 1, 1]  # KD only where both mixed clips have a teacher


def test_kd_loss_is_used_when_teacher_present():
    task = AudioTagging(model="demo_cnn", num_classes=4, kd_lambda=0.1, model_overrides={"dropout": 0.0})
    logged = {}
    task.log = lambda name, value, **k: logged.__setitem__(name, float(value))
    task.model.eval()  # fixed BN statistics: the step's logits are reproducible below
    batch = _batch()
    loss = task._shared_step(batch, "train")
    logits, _ = task.model(task.frontend(batch["audio"]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    per_clip = bce(logits, torch.sigmoid(batch["teacher"]), reduction="none").mean(1) * batch["teacher_weight"]
    expected = 0.1 * bce(logits, batch["target"]) + 0.9 * per_clip.mean()
    torch.testing.assert_close(loss, expected)
    assert "train/distillation_loss" in logged


def test_tiny_fit_with_distillation_lowers_the_loss(tone_h5_dir, tmp_path):
    pl.seed_everything(0)
    names = [f"clip_{i:04d}.wav" for i in range(48)]
    from datamodules.format.hdf5 import AudioH5

    labels = AudioH5(f"{tone_h5_dir}/train.h5").weak_targets().astype(np.float32)
    write_teacher_logits(str(tmp_path / "teacher.h5"), names, 8 * labels - 4)
    dm = TaggingDataModule(train_h5=f"{tone_h5_dir}/train.h5", val_h5=f"{tone_h5_dir}/val.h5", clip_seconds=0.5,
                           batch_size=16, num_workers=0, teacher_logits=str(tmp_path / "teacher.h5"))
    task = AudioTagging(model="demo_cnn", num_classes=4, lr=3e-3, mixup_alpha=0.3, roll_samples=1000)
    losses = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            losses.append(float(trainer.callback_metrics["train/loss_epoch"]))

    trainer = pl.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         callbacks=[Record()], accelerator="cpu", enable_model_summary=False)
    trainer.fit(task, datamodule=dm)
    assert losses[-1] < 0.8 * losses[0], losses
    assert float(trainer.callback_metrics["val/mAP"]) > 0.6
    assert float(trainer.callback_metrics["train/teacher_coverage"]) == 1.0  # every training clip has a teacher row


def test_demo_config_on_demo_data_lowers_the_loss(demo_data, tmp_path):
    import os

    from experiments.cli import run_lightning_cli

    root, _ = demo_data
    config = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo", "tagging.yaml")
    cli = run_lightning_cli(["--config", config, *[f"--data.init_args.{s}_h5={root}/events_{s}.h5" for s in
                             ("train", "val", "test")], "--data.init_args.num_workers=0", "--trainer.max_epochs=4",
                             "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=1",
                             f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    losses = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            losses.append(float(trainer.callback_metrics["train/loss_epoch"]))

    cli.trainer.callbacks.append(Record())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.model.hparams.num_classes == 8
    assert losses[-1] < losses[0], losses


@pytest.mark.bad_input
def test_cross_entropy_mode_needs_one_label_and_reports_accuracy():
    import pytest

    task = AudioTagging(model="demo_cnn", num_classes=4, loss="ce").eval()
    batch = _batch()
    del batch["teacher"], batch["teacher_weight"]
    with pytest.raises(ValueError, match="exactly one label per clip; clip 'c0'"):
        task._shared_step(batch, "val")
    batch["target"] = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4).float()
    task.outputs["val"].reset()
    loss = task._shared_step(batch, "val")
    logits = task(batch["audio"])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, batch["target"].argmax(1)))
    result = task.evaluate("val")
    assert result["acc"] == float((logits.argmax(1) == batch["target"].argmax(1)).float().mean())
    assert result["loss"] == pytest.approx(float(loss), rel=1e-6)


@pytest.mark.bad_input
def test_masked_bce_mode_ignores_unknown_labels_in_loss_and_metrics():
    import pytest

    task = AudioTagging(model="demo_cnn", num_classes=4, loss="masked_bce").eval()
    batch = _batch()
    del batch["teacher"], batch["teacher_weight"]
    with pytest.raises(ValueError, match="needs a label mask"):
        task._shared_step(batch, "val")
    batch["target"] = torch.rand(6, 4)
    batch["mask"] = torch.rand(6, 4) > 0.4
    loss = task._shared_step(batch, "val")
    logits = task(batch["audio"])
    known = batch["mask"]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], batch["target"][known])
    torch.testing.assert_close(loss, expected)
    # changing an unknown target changes neither the loss nor the mAP
    changed = dict(batch, target=torch.where(known, batch["target"], 1.0 - batch["target"]))
    task.outputs["val"].reset()
    task._shared_step(batch, "val")
    first = task.evaluate("val")
    task.outputs["val"].reset()
    torch.testing.assert_close(task._shared_step(changed, "val"), loss)
    assert task.evaluate("val") == first and first["loss"] == pytest.approx(float(loss), rel=1e-6)


DDP_SCRIPT = """
import json, sys
import pytorch_lightning as pl
import torch
from callbacks.prediction_writer import TagPredictionWriter
from datamodules.tagging import TaggingDataModule
from experiments.tagging import AudioTagging

out, data, weights, devices = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(1)
task = AudioTagging(model="demo_cnn", num_classes=4)
task.load_state_dict(torch.load(weights))
dm = TaggingDataModule(val_h5=data, test_h5=data, clip_seconds=0.25, batch_size=8, num_workers=0)
trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[TagPredictionWriter(f"{out}/predictions.tsv")])
metrics = {**trainer.validate(task, dm, verbose=False)[0], **trainer.test(task, dm, verbose=False)[0]}
trainer.predict(task, dm, return_predictions=False)
if trainer.is_global_zero:
    with open(f"{out}/metrics.json", "w") as f:
        json.dump(metrics, f)
"""


@pytest.mark.slow
@pytest.mark.bad_input
def test_two_ddp_processes_score_every_clip_exactly_once(tmp_path):
    """59 clips on 2 processes: the sampler pads with a repeated clip, which must not count twice."""
    from tests.conftest import write_tone_h5

    data = write_tone_h5(str(tmp_path / "clips.h5"), 59, seed=5, seconds=0.25)
    torch.manual_seed(0)
    torch.save(AudioTagging(model="demo_cnn", num_classes=4).state_dict(), tmp_path / "weights.pt")
    runs = {}
    for devices in (1, 2):
        out = tmp_path / f"devices{devices}"
        out.mkdir()
        run_script(DDP_SCRIPT, tmp_path, out, data, tmp_path / "weights.pt", devices)
        rows = []
        for name in sorted(os.listdir(out)):
            if name.startswith("predictions"):
                with open(out / name, newline="") as f:
                    rows += [row[0] for row in csv.reader(f, delimiter="\t")][1:]
        runs[devices] = json.loads((out / "metrics.json").read_text()), rows
    (single, single_rows), (ddp, ddp_rows) = runs[1], runs[2]
    assert set(single) == set(ddp) >= {"val/mAP", "val/auroc", "val/d_prime", "val/loss", "test/mAP", "test/loss"}
    for key in single:
        if key.endswith("loss"):
            assert ddp[key] == pytest.approx(single[key], rel=1e-6), key  # a mean over the same clips
        else:
            assert ddp[key] == single[key], key
    assert sorted(ddp_rows) == sorted(single_rows) and len(set(ddp_rows)) == 59  # predictions: each clip once
