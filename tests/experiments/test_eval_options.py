"""Evaluation options (EVAL_OPTIONS) follow the command line and config of `sonolab test`, not the checkpoint: one ASC
checkpoint gives three different results at fp32 / fp16 / int8, and the SED engine and median filter can be changed."""
import glob
import logging
import os

import pytest
import torch
import yaml
from jsonargparse import Namespace

import experiments.sed
from experiments.asc import SceneClassification
from experiments.cli import keep_eval_options, main, run_lightning_cli
from experiments.sed import SoundEventDetection
from experiments.tagging import AudioTagging

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def test_tasks_declare_their_evaluation_options():
    assert SceneClassification.EVAL_OPTIONS == ("test_precision", "calibration_batches", "calibration_seed",
                                                "device_checkpoints", "device_groups")
    assert SoundEventDetection.EVAL_OPTIONS == ("median_windows", "test_engine")
    assert AudioTagging.EVAL_OPTIONS == ()


def test_keep_eval_options_restores_only_the_declared_names():
    run = Namespace(class_path="experiments.asc.SceneClassification",
                    init_args=Namespace(test_precision="int8", lr=0.1, calibration_batches=2))
    merged = Namespace(class_path="experiments.asc.SceneClassification",
                       init_args=Namespace(test_precision="fp16", lr=0.005, calibration_batches=2, device_groups=None))
    kept = keep_eval_options(run, merged)
    assert kept == {"test_precision": ("int8", "fp16"), "calibration_batches": (2, 2)}
    assert merged.init_args == Namespace(test_precision="int8", lr=0.005, calibration_batches=2, device_groups=None)
    unknown = Namespace(class_path="no.such.Task", init_args=Namespace(test_precision="fp16"))
    assert keep_eval_options(run, unknown) == {} and unknown.init_args.test_precision == "fp16"


def _asc_args(root: str, save_dir) -> list:
    tiny_model = ('{"base_channels": 8, "channels_multiplier": 2.0, "n_blocks": [1, 1, 1], '
                  '"strides": {"b2": [2, 2], "b3": [2, 2]}}')
    return ["--config", os.path.join(CONFIGS, "asc", "baseline.yaml"),
            f"--data.init_args.train_h5={root}/scenes_train.h5", f"--data.init_args.test_h5={root}/scenes_test.h5",
            f"--data.init_args.split_dir={root}/scenes", "--data.init_args.batch_size=8",
            "--data.init_args.num_workers=0", f"--model.init_args.model_overrides={tiny_model}",
            "--model.init_args.calibration_batches=1", "--trainer.limit_test_batches=2", "--trainer.accelerator=cpu",
            "--trainer.devices=1", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            f"--trainer.logger.init_args.save_dir={save_dir}"]


def _run_files(cli) -> tuple:
    run_dir = cli.trainer.log_dir
    config = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))["model"]["init_args"]
    hparams = yaml.safe_load(open(os.path.join(run_dir, "hparams.yaml")))
    return config, hparams, open(os.path.join(run_dir, "submission", "output.csv"), "rb").read()


@pytest.mark.slow
def test_asc_test_precision_follows_the_test_run(demo_scenes, tmp_path, caplog):
    # the checkpoint says fp16 (baseline.yaml) and mixstyle_p 0.0
    assert main(["fit", *_asc_args(demo_scenes, tmp_path / "fit"), "--model.init_args.mixstyle_p=0.0",
                 "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2"]) == 0
    (ckpt,) = glob.glob(str(tmp_path / "fit" / "*" / "version_0" / "checkpoints" / "best.ckpt"))
    int8_config = tmp_path / "int8.yaml"
    int8_config.write_text("model:\n  init_args:\n    test_precision: int8\n")
    runs = {"fp32": ["--model.init_args.test_precision", "fp32"],  # command line
            "int8": ["--config", str(int8_config)],  # a config file
            "fp16": []}  # as the checkpoint
    outputs = {}
    for precision, extra in runs.items():
        with caplog.at_level(logging.INFO):
            cli = run_lightning_cli(["test", *_asc_args(demo_scenes, tmp_path / precision), "--ckpt_path", ckpt,
                                     *extra])
        config, hparams, outputs[precision] = _run_files(cli)
        assert cli.model.hparams.test_precision == config["test_precision"] == hparams["test_precision"] == precision
        assert cli.model.hparams.mixstyle_p == 0.0  # other hyper-parameters still come from the checkpoint
    assert next(cli.model.deployed_network().parameters()).dtype == torch.float16  # the last run tested at fp16
    assert len(set(outputs.values())) == 3, "fp32, fp16 and int8 must give three different submissions"
    assert "sonolab test: evaluation options of this run: test_precision='fp32' (checkpoint: 'fp16'), " \
           "calibration_batches=1, " in caplog.text


@pytest.mark.slow
def test_sed_engine_and_median_filter_follow_the_test_run(demo_data, tmp_path, monkeypatch):
    root = demo_data[0]
    args = ["--config", os.path.join(CONFIGS, "sed", "baseline.yaml"),
            "--config", os.path.join(CONFIGS, "demo", "sed.yaml"),
            f"--data.init_args.sources=[{{name: strong, h5: {root}/events_train.h5, batch_size: 4, labels: strong}}]",
            f"--data.init_args.val_h5={root}/events_val.h5", f"--data.init_args.test_h5={root}/events_test.h5",
            f"--data.init_args.classes={root}/events/classes.txt", "--data.init_args.num_workers=0",
            "--data.init_args.val_batch_size=4", "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2",
            "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    # the checkpoint says test_engine native and median_windows 5 (configs/demo/sed.yaml)
    assert main(["fit", *args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]) == 0
    (ckpt,) = glob.glob(str(tmp_path / "*" / "version_0" / "checkpoints" / "best.ckpt"))
    engines = []
    evaluate = experiments.sed.evaluate_scores

    def spy(*a, engine, **kw):
        engines.append(engine)
        return evaluate(*a, engine=engine, **kw)

    monkeypatch.setattr(experiments.sed, "evaluate_scores", spy)
    cli = run_lightning_cli(["test", *args, "--ckpt_path", ckpt, "--model.init_args.test_engine=psds_eval",
                             "--model.init_args.median_windows=3"])
    assert engines == ["psds_eval", "psds_eval"]  # student and teacher
    assert cli.model.windows() == (3,) * 8
    config = yaml.safe_load(open(os.path.join(cli.trainer.log_dir, "config.yaml")))["model"]["init_args"]
    assert (config["test_engine"], config["median_windows"]) == ("psds_eval", 3)
