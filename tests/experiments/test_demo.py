"""`sonolab demo --task ...`: fit, test and predict of a task's demo config, end to end (tiny), and its summary."""
import csv
import glob
import os

import h5py
import pytest

from experiments.demo import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1", "--trainer.limit_predict_batches=1", "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false", "--data.init_args.num_workers=0",
        "--trainer.check_val_every_n_epoch=1"]


def _summary(printed: str) -> dict:
    """The `label : value` lines of the summary block."""
    block = printed[printed.rindex("demo "):]
    return {k.strip(): v.strip() for k, v in (line.split(" : ", 1) for line in block.splitlines() if " : " in line)}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sed", "asc", "strong"])
def test_demo_task_runs_end_to_end_and_prints_its_files(task, demo_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.symlink(demo_data[0], "demo_data")  # the demo configs read demo_data/ in the working directory
    assert main(["--task", task, *TINY]) == 0
    printed = capsys.readouterr().out
    summary = _summary(printed)
    (run_dir,) = glob.glob(str(tmp_path / "logs" / f"demo_{task}" / "version_*"))
    assert f"demo {task}: fit + test + predict in " in printed
    assert summary["TensorBoard logs"].split()[0] == run_dir
    assert summary["resolved config"] == os.path.join(run_dir, "config.yaml")
    assert os.path.isfile(summary["resolved config"])
    assert summary["best checkpoint"] == os.path.join(run_dir, "checkpoints", "best.ckpt")
    assert os.path.isfile(summary["best checkpoint"])
    monitor = {"sed": "psds1", "asc": "macro_acc", "strong": "pauroc"}[task]
    assert summary["scores"].startswith(f"val/{monitor} ") and f"test/{monitor} " in summary["scores"]
    if task != "strong":
        figure = "val/events" if task == "sed" else "val/confusion"
        assert figure in summary["figures"]
    if task == "strong":
        assert summary["predictions"] == os.path.join(run_dir, "strong_logits.h5")
        with h5py.File(summary["predictions"]) as f:  # the teacher's logits of the training clips (7 classes)
            n_clips = len(f["filenames"])
            assert n_clips > 0 and f["strong_logits"].shape == (n_clips, 7, 250)
    elif task == "sed":
        assert summary["predictions"] == os.path.join(run_dir, "predictions.tsv")
        with open(summary["predictions"], newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        classes = open(os.path.join(demo_data[0], "events", "classes.txt")).read().split()
        assert rows[0] == ["filename", "onset", "offset", "event_label"]
        for name, onset, offset, label in rows[1:]:
            assert name.startswith("test_") and 0.0 <= float(onset) < float(offset) <= 4.0 and label in classes
    else:
        assert summary["predictions"] == os.path.join(run_dir, "submission")
        assert os.path.isfile(os.path.join(run_dir, "submission", "output.csv"))


def test_task_and_config_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "sed", "--config", "configs/demo/tagging.yaml"])
    assert exit_info.value.code == 2
    assert "sonolab demo: error: give --task or --config, not both" in capsys.readouterr().err


def test_missing_demo_data_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "sed"])
    assert exit_info.value.code == 2
    assert (f"sonolab demo: error: no demo_data/ in {tmp_path}: the demo configs read it; create it with "
            "`sonolab demo-data --out demo_data` (or `make demo-data`)") in capsys.readouterr().err
