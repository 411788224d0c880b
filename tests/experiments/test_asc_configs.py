"""Every shipped ASC config runs, tiny, on the demo scenes (paths overridden; 1 epoch of 1 batch; CPU)."""
import glob
import json
import os

import numpy as np
import pytest
import torch

from datamodules.format.hdf5 import AudioH5
from datamodules.teacher import write_teacher_logits
from experiments.cli import main
from models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "asc")
SPLITS = [f"split{n}.yaml" for n in (5, 10, 25, 50, 100)]
FIT_DELTAS = [*SPLITS, "dir.yaml", "kd.yaml", "device_finetune.yaml"]
TEST_DELTAS = ["device_ensemble.yaml"]


def test_every_asc_config_is_exercised():
    shipped = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "*.yaml")))
    assert shipped == sorted(["baseline.yaml", *FIT_DELTAS, *TEST_DELTAS])


def tiny_args(root: str, tmp_path) -> list:
    return [
        f"--data.init_args.train_h5={root}/scenes_train.h5", f"--data.init_args.test_h5={root}/scenes_test.h5",
        f"--data.init_args.split_dir={root}/scenes", "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0", "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1", "--trainer.accelerator=cpu",
        "--trainer.devices=1", "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]


@pytest.fixture(scope="module")
def general_checkpoint(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("asc_ckpt") / "general.pt")
    torch.save(create_model("cp_mobile_dcase24").state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("delta", FIT_DELTAS)
def test_asc_config_fits_tiny(delta, demo_scenes, general_checkpoint, tmp_path):
    extra = []
    if delta == "dir.yaml":
        extra.append(f"--model.init_args.dir_dir={demo_scenes}/dirs")
    if delta == "kd.yaml":
        names = list(AudioH5(f"{demo_scenes}/scenes_train.h5").names)
        teacher = str(tmp_path / "teacher.h5")
        write_teacher_logits(teacher, names, np.random.default_rng(0).standard_normal((len(names), 10)))
        extra.append(f"--data.init_args.teacher_logits={teacher}")
    if delta == "device_finetune.yaml":
        extra.append(f"--model.init_args.checkpoint={general_checkpoint}")
    main(["fit", "--config", os.path.join(ROOT, "baseline.yaml"), "--config", os.path.join(ROOT, delta),
          *tiny_args(demo_scenes, tmp_path), *extra])
    (run_dir,) = glob.glob(str(tmp_path / "asc_*" / "version_*"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))


@pytest.mark.slow
def test_baseline_test_and_device_ensemble(demo_scenes, general_checkpoint, tmp_path):
    experts = json.dumps({d: general_checkpoint for d in ("a", "b", "c", "s1", "s2", "s3")})
    main(["test", "--config", os.path.join(ROOT, "baseline.yaml"), "--config", os.path.join(ROOT, "device_ensemble.yaml"),
          *tiny_args(demo_scenes, tmp_path), f"--model.init_args.checkpoint={general_checkpoint}",
          f"--model.init_args.device_checkpoints={experts}"])
    (out,) = glob.glob(str(tmp_path / "asc_*" / "version_*" / "submission"))
    info = json.load(open(os.path.join(out, "info.json")))
    assert info["device_models"] == ["a", "b", "c", "s1", "s2", "s3"]
    state = torch.load(os.path.join(out, "model_state_dict.pt"), weights_only=True)
    assert any(k.startswith("experts.s3.") for k in state) and any(k.startswith("general.") for k in state)
