"""`sonolab predict` writes per-clip tags."""
import csv
import glob
import os

from experiments.cli import main

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo", "tagging.yaml")


def test_predict_writes_one_row_per_clip(tone_h5_dir, tmp_path):
    main(["predict", "--config", CONFIG, f"--data.init_args.test_h5={tone_h5_dir}/test.h5",
          f"--data.init_args.train_h5={tone_h5_dir}/train.h5", "--data.init_args.val_h5=null",
          "--data.init_args.clip_seconds=1.0", "--data.init_args.num_workers=0",
          f"--trainer.logger.init_args.save_dir={tmp_path}"])
    (path,) = glob.glob(str(tmp_path / "demo_tagging" / "version_*" / "predictions.tsv"))
    with open(path) as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["filename", "tags", "low", "mid", "high", "noise"]
    assert len(rows) == 17 and rows[1][0] == "clip_0000.wav"
    for row in rows[1:]:
        probs = [float(p) for p in row[2:]]
        assert all(0.0 <= p <= 1.0 for p in probs)
        assert row[1] == ",".join(c for c, p in zip(rows[0][2:], probs) if p > 0.5)
