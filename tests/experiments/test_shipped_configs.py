"""Every shipped tagging config and every demo config (configs/demo/) runs, tiny, on small data by overriding its
data paths (no network). The ASC and SED recipes have their own files (test_asc_configs.py, test_sed.py)."""
import glob
import os

import numpy as np
import pytest

from datamodules.teacher import write_teacher_logits
from experiments.cli import main, run_lightning_cli
from experiments.demo import REPO, TASKS

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
          "--data.init_args.class_names=null", "--data.init_args.clip_seconds=0.64", "--data.init_args.batch_size=4",
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
                f"--data.init_args.test_h5={demo_root}/events_test.h5", "--data.init_args.class_names=null"]
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


def test_every_demo_config_is_a_demo_task():
    shipped = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs", "demo", "*.yaml")))
    assert shipped == ["asc.yaml", "sed.yaml", "strong.yaml", "tagging.yaml"]
    assert sorted(f"{task}.yaml" for task in TASKS) == shipped
    for task, configs in TASKS.items():
        assert configs[-1] == f"configs/demo/{task}.yaml"
        assert all(os.path.isfile(os.path.join(REPO, path)) for path in configs), configs


def _demo_data_paths(task: str, root: str) -> list:
    """The overrides that point a demo config at a demo folder other than ./demo_data."""
    if task == "sed":
        return [f"--data.init_args.sources=[{{name: strong, h5: {root}/events_train.h5, batch_size: 4, labels: strong}}]",
                f"--data.init_args.val_h5={root}/events_val.h5", f"--data.init_args.test_h5={root}/events_test.h5",
                f"--data.init_args.classes={root}/events/classes.txt"]
    return [f"--data.init_args.train_h5={root}/scenes_train.h5", f"--data.init_args.test_h5={root}/scenes_test.h5",
            f"--data.init_args.split_dir={root}/scenes", f"--model.init_args.dir_dir={root}/dirs",
            "--data.init_args.batch_size=4"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("task", ["sed", "asc"])  # tagging: test_cli.py, test_tagging.py; strong: test_demo.py
def test_demo_config_fits_tiny_on_demo_data(task, demo_data, tmp_path):
    configs = [arg for path in TASKS[task] for arg in ("--config", os.path.join(REPO, path))]
    cli = run_lightning_cli(["fit", *configs, *_demo_data_paths(task, demo_data[0]), "--trainer.max_epochs=1",
                             "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
                             "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
                             "--data.init_args.num_workers=0", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    monitor = "val/psds1" if task == "sed" else "val/macro_acc"
    assert monitor in cli.trainer.callback_metrics
    (run_dir,) = glob.glob(str(tmp_path / f"demo_{task}" / "version_*"))
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["best.ckpt", "last.ckpt"]
