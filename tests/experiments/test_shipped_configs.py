"""Every shipped tagging config runs, tiny, on small data by overriding its data paths (no network)."""
import glob
import os

import numpy as np
import pytest

from datamodules.teacher import write_teacher_logits
from experiments.cli import main

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tagging")
DELTAS = ["mn04.yaml", "mn10.yaml", "mn40.yaml", "dymn10.yaml", "no_kd.yaml"]


def test_every_tagging_config_is_exercised():
    shipped = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "*.yaml")))
    assert shipped == sorted(["audioset.yaml", *DELTAS])


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
