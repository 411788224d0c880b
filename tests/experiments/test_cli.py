"""`sonolab` end to end: the shipped demo config fitted for a few batches, config round trip, DDP, tools."""
import glob
import json
import os
import subprocess
import sys

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments.cli import main

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo", "tagging.yaml")


def _data_args(tone_dir: str) -> list:
    return [f"--data.init_args.{split}_h5={tone_dir}/{split}.h5" for split in ("train", "val", "test")] + [
        "--data.init_args.clip_seconds=1.0", "--data.init_args.batch_size=8", "--data.init_args.num_workers=0"]


def _scalars(log_dir: str) -> dict:
    acc = EventAccumulator(log_dir)
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_fit_logs_checkpoints_and_saves_config(tone_h5_dir, tmp_path):
    main(["fit", "--config", CONFIG, *_data_args(tone_h5_dir), f"--trainer.logger.init_args.save_dir={tmp_path}",
          "--trainer.max_epochs=2", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2",
          "--trainer.log_every_n_steps=1"])
    (run_dir,) = glob.glob(str(tmp_path / "demo_tagging" / "version_*"))
    assert os.path.isfile(os.path.join(run_dir, "config.yaml"))
    ckpts = sorted(os.path.basename(p) for p in glob.glob(os.path.join(run_dir, "checkpoints", "*.ckpt")))
    assert ckpts == ["best.ckpt", "last.ckpt"]
    scalars = _scalars(run_dir)
    for key in ("train/loss_step", "train/loss_epoch", "val/loss", "val/mAP", "val/auroc", "val/d_prime"):
        assert key in scalars, f"{key} not logged; got {sorted(scalars)}"
    assert len(scalars["val/mAP"]) == 2
    # hyper-parameters in the checkpoint are primitives: it reloads with weights_only=True
    import torch

    ckpt = torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), weights_only=True)
    assert ckpt["hyper_parameters"]["model"] == "demo_cnn"
    assert ckpt["hyper_parameters"]["num_classes"] == 4  # linked from the data


def test_print_config_round_trip(tone_h5_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", CONFIG, *_data_args(tone_h5_dir), "--model.init_args.lr=0.01", "--print_config"])
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["class_path"] == "experiments.tagging.AudioTagging"
    assert config["model"]["init_args"]["lr"] == 0.01
    path = tmp_path / "resolved.yaml"
    path.write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(path), "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == config


@pytest.mark.bad_input
def test_input_errors_raised_inside_fit_are_one_line(tone_h5_dir, tmp_path, capsys):
    """A val file of another label space is found during setup, inside Lightning: one line and exit 2."""
    import h5py
    import shutil

    val = str(tmp_path / "val.h5")
    shutil.copyfile(os.path.join(tone_h5_dir, "val.h5"), val)
    with h5py.File(val, "a") as f:
        f.attrs["class_names"] = ["mid", "low", "high", "noise"]
    code = main(["fit", "--config", CONFIG, *_data_args(tone_h5_dir), f"--data.init_args.val_h5={val}",
                 f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.fast_dev_run=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("sonolab fit: error: ") and "val.h5" in err[-1]
    assert "first difference at column 0: 'mid' vs 'low'" in err[-1] and not any("Traceback" in e for e in err)


@pytest.mark.bad_input
def test_sample_rate_mismatch_is_a_clear_error(tone_h5_dir, tmp_path):
    with pytest.raises(ValueError, match="expects 32000 Hz"):
        main(["fit", "--config", CONFIG, *_data_args(tone_h5_dir), "--data.init_args.sample_rate=16000",
              f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.fast_dev_run=1"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_log_the_same_keys(tone_h5_dir, tmp_path):
    common = ["fit", "--config", CONFIG, *_data_args(tone_h5_dir), "--trainer.max_epochs=1",
              "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2", "--trainer.accelerator=cpu",
              "--trainer.log_every_n_steps=1"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, "-m", "experiments.cli", *common, f"--trainer.logger.init_args.save_dir={single}"],
                   check=True, env=env, capture_output=True, timeout=300)
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", *common, "--trainer.devices=2",
                           "--trainer.strategy=ddp", f"--trainer.logger.init_args.save_dir={ddp}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = {name: set(_scalars(glob.glob(str(root / "demo_tagging" / "version_*"))[0]))
            for name, root in (("single", single), ("ddp", ddp))}
    assert keys["ddp"] == keys["single"] and "val/mAP" in keys["ddp"]


def test_complexity_command_json(capsys):
    assert main(["complexity", "demo_cnn", "--input-shape", "1,1,64,100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["params"], int) and isinstance(result["macs"], int)
    assert result["params"] == 241898 and result["input_shape"] == [1, 1, 64, 100]


@pytest.mark.bad_input
def test_complexity_command_rejects_bad_input(capsys):
    with pytest.raises(SystemExit):
        main(["complexity", "no_such_model"])
    assert "unknown model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["complexity", "demo_cnn", "--input-shape", "1,x"])
    assert "--input-shape" in capsys.readouterr().err


def test_complexity_gate_command(capsys):
    assert main(["complexity", "cp_mobile_dcase24", "--gate", "fp16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["params"], result["macs"], result["param_bytes"]) == (61148, 29419156, 122296)
    assert result["violations"] == []
    assert main(["complexity", "cp_mobile_grn_dcase23", "--gate", "fp16"]) == 1
    assert "GATE FAILED: parameter memory 253,904 B" in capsys.readouterr().out
    assert main(["complexity", "cp_mobile_grn_dcase23", "--gate", "int8"]) == 0
