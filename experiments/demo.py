"""``sonolab demo``: fit a config, then test and predict with its best checkpoint, in one process."""
from __future__ import annotations

import argparse
import os
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Runs fit -> test(best) -> predict(best) of one config and prints where the results are."""
    from experiments.cli import run_lightning_cli

    parser = argparse.ArgumentParser(prog="sonolab demo", description=main.__doc__)
    parser.add_argument("--config", required=True, help="a fit config (e.g. configs/demo/tagging.yaml)")
    args, overrides = parser.parse_known_args(argv)
    cli = run_lightning_cli(["--config", args.config, *overrides], run=False)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule=data)
    ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    trainer.test(model, datamodule=data, ckpt_path=ckpt)
    trainer.predict(model, datamodule=data, ckpt_path=ckpt, return_predictions=False)
    if trainer.is_global_zero:
        writers = [cb for cb in trainer.callbacks if hasattr(cb, "written_path")]
        log_dir = os.path.abspath(trainer.log_dir or ".")
        print("\n" + "=" * 72)
        print(f"TensorBoard logs : {log_dir}   (tensorboard --logdir {os.path.dirname(log_dir)})")
        print(f"resolved config  : {os.path.join(log_dir, 'config.yaml')}")
        if ckpt:
            print(f"best checkpoint  : {trainer.checkpoint_callback.best_model_path}")
        for writer in writers:
            print(f"predictions      : {writer.written_path}")
        print("=" * 72)
    return 0
