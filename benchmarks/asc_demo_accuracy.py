"""Short CPU runs of the ASC task on the demo scenes: with/without Freq-MixStyle and DIR, and fp32 vs int8 testing.

    python benchmarks/asc_demo_accuracy.py --demo-dir demo_data --epochs 15 [--full-model]

Prints macro accuracy (official metric) and the unseen-device (s4-s6) accuracy on the demo test clips. By default a
small CP-Mobile (base 8 channels, one block per stage) on a 64-band mel is trained so that a run takes seconds; the
demo world is tiny (200 training clips), so differences of a few points are noise; run several seeds to compare.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import pytorch_lightning as pl
import torch

from datamodules.asc import ASCDataModule
from experiments.asc import SceneClassification

TINY = dict(
    model_overrides=dict(base_channels=8, channels_multiplier=2.0, n_blocks=[1, 1, 1],
                         strides={"b2": [2, 2], "b3": [2, 2]}),
    frontend_overrides=dict(n_mels=64, n_fft=1024, win_length=1024, hop_length=1000, freqm=0),
)


def run(demo_dir: str, epochs: int, seed: int, mixstyle: bool, dir_aug: bool, precision: str, full: bool) -> dict:
    pl.seed_everything(seed, verbose=False)
    dm = ASCDataModule(os.path.join(demo_dir, "scenes_train.h5"), os.path.join(demo_dir, "scenes_test.h5"),
                       split_dir=os.path.join(demo_dir, "scenes"), batch_size=20, num_workers=0)
    task = SceneClassification(lr=0.01 if full else 0.02, warmup_steps=10, mixstyle_p=0.4 if mixstyle else 0.0,
                               dir_dir=os.path.join(demo_dir, "dirs") if dir_aug else None, test_precision="fp32",
                               **({} if full else TINY))
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         check_val_every_n_epoch=epochs)
    trainer.fit(task, dm)
    results = {}
    for prec in ("fp32", precision) if precision != "fp32" else ("fp32",):
        task.hparams.test_precision = prec
        metrics = trainer.test(task, dm, verbose=False)[0]
        results[prec] = (metrics["test/macro_acc"], metrics.get("test/acc/unseen", float("nan")))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default="demo_data")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--full-model", action="store_true", help="cp_mobile_dcase24 with its own frontend")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"| variant | seed | macro acc fp32 | unseen acc fp32 | macro acc int8 | unseen acc int8 | s |")
    print("|---|---|---|---|---|---|---|")
    for name, fms, dir_aug in (("plain", False, False), ("+FMS", True, False), ("+DIR", False, True),
                               ("+DIR+FMS", True, True)):
        for seed in args.seeds:
            start = time.monotonic()
            r = run(args.demo_dir, args.epochs, seed, fms, dir_aug, "int8", args.full_model)
            print(f"| {name} | {seed} | {r['fp32'][0]:.3f} | {r['fp32'][1]:.3f} | {r['int8'][0]:.3f} | "
                  f"{r['int8'][1]:.3f} | {time.monotonic() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
