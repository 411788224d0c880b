"""``sonolab demo``: fit a task's demo config, then test and predict with its best checkpoint, in one process.

    sonolab demo                             audio tagging (the default, the quickest)
    sonolab demo --task sed|asc|strong|tagging|all  one task, or all in sequence
    sonolab demo --config A.yaml [--config B.yaml] [--trainer.max_epochs=2 ...]   any fit config

Run from the repository root after ``sonolab demo-data --out demo_data`` (the demo configs read ``demo_data/``).
Extra ``--key=value`` arguments are LightningCLI overrides, applied to every task that runs. Each task ends with a
summary block: wall time, TensorBoard logs and their figures, the resolved config, the best checkpoint with its
validation and test score, and the prediction files.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DATA = "demo_data"  # where the demo configs read the data, relative to the working directory

# Each task's configs, composed in order (a demo delta on top of the real recipe where there is one).
TASKS: Dict[str, Tuple[str, ...]] = {
    "tagging": ("configs/demo/tagging.yaml",),
    "sed": ("configs/sed/baseline.yaml", "configs/demo/sed.yaml"),
    "asc": ("configs/asc/baseline.yaml", "configs/demo/asc.yaml"),
    "strong": ("configs/strong/base.yaml", "configs/strong/atst_frame.yaml", "configs/demo/strong.yaml"),
}


@dataclass
class DemoResult:
    """Where one demo run left its results.

    Attributes:
        task: Task name (or ``config`` for ``--config`` runs).
        seconds: Wall time of fit + test + predict.
        log_dir: TensorBoard run directory (holds ``config.yaml``).
        checkpoint: Best checkpoint (empty without a monitored checkpoint).
        monitor: The checkpoint's metric, with its best validation value and the test value of the same metric.
        figures: Image tags in the TensorBoard logs.
        outputs: Prediction files and folders written by callbacks.
    """

    task: str
    seconds: float
    log_dir: str
    checkpoint: str = ""
    monitor: List[Tuple[str, float]] = field(default_factory=list)
    figures: List[str] = field(default_factory=list)
    outputs: List[str] = field(default_factory=list)

    def text(self) -> str:
        """The summary block."""
        rule = "=" * 72
        lines = [rule, f"demo {self.task}: fit + test + predict in {self.seconds:.0f} s",
                 f"TensorBoard logs : {self.log_dir}   (tensorboard --logdir {os.path.dirname(self.log_dir)})",
                 f"figures          : {', '.join(self.figures) + ' (IMAGES tab)' if self.figures else 'none'}",
                 f"resolved config  : {os.path.join(self.log_dir, 'config.yaml')}"]
        if self.checkpoint:
            lines.append(f"best checkpoint  : {self.checkpoint}")
        if self.monitor:
            lines.append(f"scores           : {'   '.join(f'{k} {v:.3f}' for k, v in self.monitor)}")
        lines += [f"predictions      : {path}" for path in self.outputs]
        return "\n".join([*lines, rule])


def _image_tags(log_dir: str) -> List[str]:
    """Image tags of the TensorBoard event files in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"images": 1, "scalars": 1, "tensors": 1})
    accumulator.Reload()
    return sorted(accumulator.Tags().get("images", []))


def run_demo(configs: Sequence[str], overrides: Sequence[str], task: str = "config") -> DemoResult:
    """Fits the composed ``configs``, then tests and predicts with the best checkpoint.

    Args:
        configs: Config files, composed in order.
        overrides: LightningCLI arguments after the configs (``--trainer.max_epochs=2``, ...).
        task: Name shown in the summary.
    """
    from experiments.cli import run_lightning_cli

    start = time.perf_counter()
    args = [arg for config in configs for arg in ("--config", config)]
    cli = run_lightning_cli([*args, *overrides], run=False)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule=data)
    checkpoint = trainer.checkpoint_callback
    ckpt = "best" if checkpoint is not None and checkpoint.best_model_path else None
    tested = trainer.test(model, datamodule=data, ckpt_path=ckpt, verbose=False)
    trainer.predict(model, datamodule=data, ckpt_path=ckpt, return_predictions=False)
    log_dir = os.path.abspath(trainer.log_dir or ".")
    result = DemoResult(task, time.perf_counter() - start, log_dir)
    if ckpt:
        result.checkpoint = os.path.abspath(checkpoint.best_model_path)
        if checkpoint.monitor and checkpoint.best_model_score is not None:
            result.monitor.append((checkpoint.monitor, float(checkpoint.best_model_score)))
            test_key = "test/" + checkpoint.monitor.split("/", 1)[-1]
            if tested and test_key in tested[0]:
                result.monitor.append((test_key, float(tested[0][test_key])))
    result.figures = _image_tags(log_dir)
    for callback in trainer.callbacks:
        written = getattr(callback, "written_path", None) or getattr(callback, "written_dir", None)
        if written:
            result.outputs.append(os.path.abspath(written))
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """Runs fit -> test(best) -> predict(best) of a task's demo (or of given configs) and prints where the results
    are."""
    parser = argparse.ArgumentParser(prog="sonolab demo", description=main.__doc__,
                                     epilog="Other --key=value arguments are LightningCLI overrides.")
    parser.add_argument("--task", choices=[*TASKS, "all"], help="the demo to run (default: tagging)")
    parser.add_argument("--config", action="append", help="fit config(s) to run instead of a task's demo")
    args, overrides = parser.parse_known_args(argv)
    if args.task and args.config:
        parser.error("give --task or --config, not both")
    if args.config:
        runs = [("config", tuple(args.config))]
    else:
        if not os.path.isdir(DEMO_DATA):
            parser.error(f"no {DEMO_DATA}/ in {os.getcwd()}: the demo configs read it; create it with "
                         f"`sonolab demo-data --out {DEMO_DATA}` (or `make demo-data`)")
        names = list(TASKS) if args.task == "all" else [args.task or "tagging"]
        runs = [(name, tuple(os.path.join(REPO, path) for path in TASKS[name])) for name in names]
    results = []
    for name, configs in runs:
        results.append(run_demo(configs, overrides, name))
        _print("\n" + results[-1].text())
    if len(results) > 1:
        _print("\nall demos:\n" + "\n".join(result.text() for result in results))
    return 0


def _print(text: str) -> None:
    from pytorch_lightning.utilities import rank_zero_only

    rank_zero_only(print)(text)  # once under DDP
