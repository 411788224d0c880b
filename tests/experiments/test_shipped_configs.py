"""Every shipped tagging config runs, tiny, on small data by overriding its data paths (no network)."""
import glob
import os

import numpy as np
import pytest

from datamodules.teacher import write_teacher_logits
from experiments.cli import main, run_lightning_cli

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tagging")
DELTAS = ["mn04.yaml", "mn10.yaml", "mn40.yaml", "dymn10.yaml", "no_kd.yaml"]
DOWNSTREAM = ["esc50.yaml", "fsd50k.yaml", "openmic.yaml", "dcase20_asc.yaml"]
TINY = ["--model.init_args.pretrained=null", "--model.init_args.model=mn04_as", "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2", "--trainer.accelerator=cpu",
        "--trainer.devices=1", "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--data.init_args.clip_seconds=1.0"]


def test_every_tagging_config_is_exercised():
    shipped = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "*.yaml")))
    assert shipped == sorted(["audioset.yaml", *DELTAS, *DOWNSTREAM])


@pytest.mark.slow
@pytest.mark.parametrize("delta", DELTAS)
def test_audioset_config_runs_tiny(delta, tone_h5_dir, tmp_path):
    teacher = str(tmp_path / "teacher.h5")
    write_teacher_logits(teacher, [f"clip_{i:04d}.wav" for i in range(48)], np.zeros((48, 4)))
    configs = ["--config", os.path.join(ROOT, "audioset.yaml"), "--config", os.path.join(ROOT, delta)]
    teacher_args = [] if delta == "no_kd.yaml" else [f"--data.init_args.teacher_logits={teacher}"]
    main(["fit", *configs, f"--data.init_args.train_h5=[{tone_h5_dir}/train.h5]",
          f"--data.init_args.val_h5={tone_h5_dir}/val.h5", f"--data.init_args.test_h5={tone_h5_dir}/test.h5",
          "--data.init_args.num_classes=4", "--data.init_args.clip_seconds=0.64", "--data.init_args.batch_size=4",
          "--data.init_args.num_workers=0", "--data.init_args.samples_per_epoch=8", *teacher_args,
          "--model.init_args.pretrained=null", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1",
          "--trainer.accelerator=cpu", "--trainer.devices=1", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    (run_dir,) = glob.glob(str(tmp_path / "audioset" / "version_*"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))


def _data_paths(config: str, demo_root: str, packed: dict) -> list:
    """The data-path overrides that point a downstream config at the demo world."""
    if config == "esc50.yaml":
        return [f"--data.init_args.folds_h5=[{','.join(packed['esc50'])}]", "--data.init_args.fold=3"]
    if config == "fsd50k.yaml":
        return [f"--data.init_args.train_h5={demo_root}/events_train.h5", f"--data.init_args.val_h5={demo_root}/events_val.h5",
                f"--data.init_args.test_h5={demo_root}/events_test.h5", "--data.init_args.num_classes=8"]
    split = packed["openmic" if config == "openmic.yaml" else "tau20"]
    return [f"--data.init_args.train_h5={split['train']}", f"--data.init_args.val_h5={split['test']}",
            f"--data.init_args.test_h5={split['test']}"]


@pytest.mark.slow
@pytest.mark.parametrize("config", DOWNSTREAM)
def test_downstream_config_runs_tiny_on_demo_data(config, demo_data, downstream_h5, tmp_path):
    import pytorch_lightning as pl

    cli = run_lightning_cli(["fit", "--config", os.path.join(ROOT, config), *_data_paths(config, demo_data[0], downstream_h5),
                *TINY, f"--trainer.logger.init_args.save_dir={tmp_path}"])
    trainer: pl.Trainer = cli.trainer
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert {"val/mAP", "val/auroc", "train/loss_epoch"} <= set(metrics)
    assert ("val/acc" in metrics) == (config in ("esc50.yaml", "dcase20_asc.yaml"))
    assert all(v == v for v in metrics.values())  # no NaN from masks or soft targets
    (run_dir,) = glob.glob(str(tmp_path / "*" / "version_*"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
