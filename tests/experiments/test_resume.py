"""Resuming a fit: `--ckpt_path last` continues the latest run of a config in its own folder and logs exactly what
the uninterrupted run logs; SIGTERM writes a resumable last.ckpt and exits with 143; clear errors without a run."""
import glob
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from jsonargparse import Namespace
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments.cli import main, resolve_ckpt_path, run_lightning_cli

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
CONFIG = os.path.join(REPO, "configs", "demo", "tagging.yaml")
BATCHES = 3  # training batches per epoch


def _args(root: str, save_dir, epochs: int, *extra: str) -> list:
    """The demo tagging config (mixup on), tiny: 1 s crops of the demo clips, 3 batches of 8, no workers."""
    return ["fit", "--config", CONFIG, *(f"--data.init_args.{s}_h5={root}/events_{s}.h5" for s in ("train", "val", "test")),
            "--data.init_args.clip_seconds=1.0", "--data.init_args.batch_size=8", "--data.init_args.num_workers=0",
            f"--trainer.logger.init_args.save_dir={save_dir}", f"--trainer.max_epochs={epochs}",
            f"--trainer.limit_train_batches={BATCHES}", "--trainer.limit_val_batches=2", "--trainer.log_every_n_steps=1",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *extra]


def _scalars(path: str) -> dict:
    """{tag: {step: value}} of a run folder or one event file (hp_metric, written at every start, left out)."""
    acc = EventAccumulator(path)
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"] if tag != "hp_metric"}


@pytest.mark.slow
def test_resumed_fit_logs_exactly_what_the_uninterrupted_fit_logs(demo_data, tmp_path, one_thread):
    root = demo_data[0]
    assert main(_args(root, tmp_path / "straight", 3)) == 0
    assert main(_args(root, tmp_path / "resumed", 2)) == 0
    assert main(_args(root, tmp_path / "resumed", 3, "--ckpt_path", "last")) == 0

    assert os.listdir(tmp_path / "resumed" / "demo_tagging") == ["version_0"]  # continued in the same folder
    run_dir = str(tmp_path / "resumed" / "demo_tagging" / "version_0")
    assert len(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))) == 2
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["best.ckpt", "last.ckpt"]
    straight = _scalars(str(tmp_path / "straight" / "demo_tagging" / "version_0"))
    resumed = _scalars(run_dir)
    last_epoch = range(2 * BATCHES, 3 * BATCHES)  # the steps of epoch 2, all logged by the resumed run
    for tag in ("train/loss_step", "train/loss_epoch", "val/loss", "val/mAP", "val/auroc", "lr-Adam", "epoch"):
        assert any(step in last_epoch for step in resumed[tag]), f"{tag} not logged in the resumed epoch"
    assert set(resumed) == set(straight)
    for tag in straight:
        assert resumed[tag] == straight[tag], tag  # exact: same draws, same weights, same schedule


@pytest.mark.slow
def test_resumed_sed_fit_continues_the_ema_teacher_exactly(demo_data, tmp_path, one_thread):
    # the mean-teacher task: EMA teacher weights, step-wise LambdaLR, consistency ramp on global_step, per-source
    # permutations keyed on (seed, epoch), within-source mixup (p 0.5); 2 epochs (1 + 1 resumed) of 3 batches
    root = demo_data[0]
    sources = (f"[{{name: strong, h5: {root}/events_train.h5, batch_size: 4, labels: strong}}, "
               f"{{name: unlabeled, h5: {root}/events_test.h5, batch_size: 2, labels: none}}]")
    common = ["--config", os.path.join(REPO, "configs", "sed", "baseline.yaml"), f"--data.init_args.sources={sources}",
              f"--data.init_args.val_h5={root}/events_val.h5", f"--data.init_args.classes={root}/events/classes.txt",
              "--data.init_args.clip_seconds=4.0", "--data.init_args.num_workers=0",
              "--data.init_args.val_batch_size=8", "--model.init_args.median_windows=5",
              "--model.init_args.model_overrides={channels: [8, 8, 16, 16, 16, 16, 16], rnn_hidden: 16}",
              "--model.init_args.warmup_epochs=1", "--model.init_args.cosine_start=1",
              "--model.init_args.cosine_end=2", f"--trainer.limit_train_batches={BATCHES}",
              "--trainer.limit_val_batches=1", "--trainer.accelerator=cpu", "--trainer.devices=1",
              "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
              "--trainer.enable_model_summary=false"]
    for name, epochs, extra in (("straight", 2, []), ("resumed", 1, []), ("resumed", 2, ["--ckpt_path", "last"])):
        assert main(["fit", *common, f"--trainer.logger.init_args.save_dir={tmp_path / name}",
                     f"--trainer.max_epochs={epochs}", *extra]) == 0
    straight = _scalars(str(tmp_path / "straight" / "sed_baseline" / "version_0"))
    resumed = _scalars(str(tmp_path / "resumed" / "sed_baseline" / "version_0"))
    for tag in ("train/consistency_loss", "val/loss", "val/psds1_teacher", "val/f1_intersection_teacher"):
        assert any(step in range(BATCHES, 2 * BATCHES) for step in resumed[tag]), f"{tag} not logged after resuming"
    assert set(resumed) == set(straight)
    for tag in straight:
        assert resumed[tag] == straight[tag], tag


_SIGTERM_CALLBACK = '''
    import os
    import signal

    import pytorch_lightning as pl


    class SigtermAtStep(pl.Callback):
        """Sends SIGTERM to its own process after optimiser step ``step``."""

        def __init__(self, step: int) -> None:
            self.step = step

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == self.step:
                os.kill(os.getpid(), signal.SIGTERM)
'''


@pytest.mark.slow
@pytest.mark.bad_input
def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(demo_data, tmp_path, one_thread):
    (tmp_path / "sigterm_at_step.py").write_text(textwrap.dedent(_SIGTERM_CALLBACK))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    stop_at = BATCHES + 1  # mid-epoch 1
    args = _args(demo_data[0], tmp_path, 3, f"--trainer.callbacks+={{class_path: sigterm_at_step.SigtermAtStep, "
                                            f"init_args: {{step: {stop_at}}}}}")
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 143, proc.stderr[-3000:]
    run_dir = tmp_path / "demo_tagging" / "version_0"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"sonolab fit: stopped by SIGTERM; resumable checkpoint: {last}" in proc.stderr
    assert "--ckpt_path last" in proc.stderr.splitlines()[-1]
    ckpt = torch.load(last, weights_only=True)  # the RNG states keep the checkpoint loadable with weights_only
    assert (ckpt["global_step"], ckpt["epoch"]) == (stop_at, 1)  # later than the end of epoch 0 (step 3)

    cli = run_lightning_cli(_args(demo_data[0], tmp_path, 2, "--ckpt_path", "last"))
    assert cli.trainer.global_step == 2 * BATCHES  # the remaining 2 batches of epoch 1, not a new fit
    assert os.listdir(tmp_path / "demo_tagging") == ["version_0"]
    newest = max(glob.glob(str(run_dir / "events.out.tfevents.*")), key=os.path.getmtime)
    assert sorted(_scalars(newest)["train/loss_step"]) == [stop_at, stop_at + 1]


@pytest.mark.parametrize("flag", [["--ckpt_path", "last"], ["--ckpt_path=last"]])
@pytest.mark.bad_input
def test_ckpt_path_last_without_a_run_is_one_error_line(flag, tmp_path, capsys):
    os.makedirs(tmp_path / "demo_tagging" / "version_0" / "checkpoints")  # a run that never finished an epoch
    assert main(_args("nowhere", tmp_path, 1, *flag)) == 2
    expected = (f"sonolab fit: error: --ckpt_path last: no checkpoint of this config under "
                f"{tmp_path}/demo_tagging/version_*/checkpoints/last.ckpt\n")
    err = capsys.readouterr().err
    assert err.endswith(expected) and "Traceback" not in err  # (a warning of pytest's argv may come before it)
    assert os.listdir(tmp_path / "demo_tagging") == ["version_0"]  # no new run started


@pytest.mark.bad_input
def test_missing_checkpoint_file_is_one_error_line(tmp_path, capsys):
    missing = tmp_path / "nothing.ckpt"
    assert main(_args("nowhere", tmp_path, 1, "--ckpt_path", str(missing))) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"sonolab fit: error: --ckpt_path {missing}: no such checkpoint file\n")
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "demo_tagging")


def _config(save_dir, version=None) -> Namespace:
    logger = Namespace(class_path="pytorch_lightning.loggers.TensorBoardLogger",
                       init_args=Namespace(save_dir=str(save_dir), name="exp", version=version))
    return Namespace(ckpt_path="last", trainer=Namespace(logger=logger))


@pytest.mark.bad_input
def test_ckpt_path_last_picks_the_highest_version_with_a_last_checkpoint(tmp_path):
    for version, has_last in (("version_0", True), ("version_2", True), ("version_10", False), ("other", True)):
        os.makedirs(tmp_path / "exp" / version / "checkpoints")
        if has_last:
            (tmp_path / "exp" / version / "checkpoints" / "last.ckpt").write_bytes(b"")
    config = _config(tmp_path)
    resolve_ckpt_path(config, pin_version=True)
    assert config.ckpt_path == str(tmp_path / "exp" / "version_2" / "checkpoints" / "last.ckpt")
    assert config.trainer.logger.init_args.version == 2  # fit continues in that folder
    config = _config(tmp_path)
    resolve_ckpt_path(config, pin_version=False)  # test/validate/predict: new log folder, same checkpoint
    assert config.ckpt_path.endswith("version_2/checkpoints/last.ckpt") and config.trainer.logger.init_args.version is None
    config = _config(tmp_path, version=0)  # a fixed version is looked up only
    resolve_ckpt_path(config, pin_version=True)
    assert config.ckpt_path == str(tmp_path / "exp" / "version_0" / "checkpoints" / "last.ckpt")
