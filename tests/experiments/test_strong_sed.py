"""PretrainedSED on the AudioSet-strong demo: every shipped config runs tiny; teacher -> logits -> ensemble ->
student."""
import glob
import json
import os

import h5py
import numpy as np
import pytest

from datamodules.format.strong_logits import read_names
from experiments.cli import main
from experiments.commands.ensemble_logits import main as ensemble_main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "strong")
BACKBONES = ("beats", "atst_frame", "fpasst", "m2d", "asit")
TINY = {"beats": '{embed_dim: 32, depth: 1, num_heads: 2, layer_drop: 0.0}'}


def test_every_strong_config_is_exercised():
    shipped = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "*.yaml")))
    assert shipped == sorted(["base.yaml", *(f"{b}.yaml" for b in BACKBONES),
                              *(f"{b}_student.yaml" for b in BACKBONES)])


def tiny_args(root: str, tmp_path, backbone: str, batches: int = 1, epochs: int = 1) -> list:
    strong = f"{root}/audioset_strong"
    overrides = TINY.get(backbone, "{embed_dim: 32, depth: 1, num_heads: 2}")
    return [
        f"--data.init_args.train_table={strong}/audioset_train_strong.tsv",
        f"--data.init_args.eval_table={strong}/audioset_eval_strong.tsv",
        f"--data.init_args.class_map={strong}/mid_to_display_name.tsv",
        f"--data.init_args.train_h5={strong}/balanced_train_segments_mp3.hdf",
        f"--data.init_args.val_h5={strong}/eval_segments_mp3.hdf",
        f"--data.init_args.test_h5={strong}/eval_segments_mp3.hdf",
        "--data.init_args.batch_size=4", "--data.init_args.num_workers=0",
        f"--data.init_args.num_samples={4 * batches}",
        f"--model.init_args.model_overrides={{seq_hidden: 8, backbone_overrides: {overrides}}}",
        "--model.init_args.warmup_steps=1", f"--trainer.max_epochs={epochs}",
        f"--trainer.limit_train_batches={batches}",
        "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2", "--trainer.check_val_every_n_epoch=1",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.precision=32-true",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false", f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]


def _metrics(tmp_path) -> dict:
    """The last logged value of every scalar of the newest TensorBoard run under ``tmp_path``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted(glob.glob(os.path.join(str(tmp_path), "*", "version_*")), key=os.path.getmtime)
    acc = EventAccumulator(runs[-1])
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONES)
def test_teacher_config_fits_and_evaluates_tiny(backbone, demo_data, tmp_path):
    main(["fit", "--config", os.path.join(ROOT, "base.yaml"), "--config", os.path.join(ROOT, f"{backbone}.yaml"),
          *tiny_args(demo_data[0], tmp_path, backbone)])
    logged = _metrics(tmp_path)
    for key in ("train/loss_epoch", "val/loss", "val/psds1", "val/psds1_macro", "val/pauroc"):
        assert key in logged, key
        assert all(np.isfinite(logged[key])), key
    assert 0.0 <= logged["val/psds1"][-1] <= 1.0 and 0.0 <= logged["val/pauroc"][-1] <= 1.0


@pytest.mark.slow
def test_teacher_logits_ensemble_and_student_whose_loss_falls(demo_data, tmp_path):
    root = demo_data[0]
    teacher = ["--config", os.path.join(ROOT, "base.yaml"), "--config", os.path.join(ROOT, "atst_frame.yaml")]
    main(["fit", *teacher, *tiny_args(root, tmp_path / "teacher", "atst_frame")])
    checkpoint = glob.glob(str(tmp_path / "teacher" / "*" / "version_0" / "checkpoints" / "last.ckpt"))[0]
    logits = str(tmp_path / "teacher_logits.h5")
    main(["predict", *teacher, *tiny_args(root, tmp_path / "predict", "atst_frame"), f"--ckpt_path={checkpoint}",
          "--trainer.limit_predict_batches=1.0",
          "--trainer.callbacks+=" + json.dumps({"class_path": "callbacks.strong_logits_writer.StrongLogitsWriter",
                                                 "init_args": {"output_path": logits}})])
    with h5py.File(logits) as f:
        assert f["strong_logits"].dtype == np.float16 and f["strong_logits"].shape[1:] == (7, 250)
        n_clips = f["strong_logits"].shape[0]
    assert n_clips == len(set(read_names(logits))) > 0
    ensemble = str(tmp_path / "ensemble.h5")
    assert ensemble_main(["--inputs", logits, logits, "--out", ensemble]) == 0

    student = ["--config", os.path.join(ROOT, "base.yaml"), "--config", os.path.join(ROOT, "atst_frame_student.yaml")]
    quiet = [f"--model.init_args.{p}=0.0" for p in ("wavmix_p", "mixup_p", "mixstyle_p", "filter_augment_p",
                                                     "freq_warp_p", "frame_shift")]
    main(["fit", *student, *tiny_args(root, tmp_path / "student", "atst_frame", batches=4, epochs=4), *quiet,
          f"--data.init_args.teacher_logits={ensemble}", "--data.init_args.sampler=random",
          "--model.init_args.lr=0.003",
          "--trainer.check_val_every_n_epoch=4"])
    logged = _metrics(tmp_path / "student")
    epochs = logged["train/loss_epoch"]
    assert len(epochs) == 4 and epochs[-1] < epochs[0]
    assert logged["train/distillation_loss"][-1] > 0 and logged["train/label_loss"][-1] > 0


@pytest.mark.bad_input
def test_student_without_teacher_logits_is_one_clear_error(demo_data, tmp_path, capsys):
    code = main(["fit", "--config", os.path.join(ROOT, "base.yaml"), "--config",
                 os.path.join(ROOT, "atst_frame_student.yaml"), *tiny_args(demo_data[0], tmp_path, "atst_frame"),
                 "--data.init_args.teacher_logits=null"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "distillation_weight > 0 needs ensemble logits: set data.teacher_logits" in err
