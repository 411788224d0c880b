"""The ``sonolab`` command: LightningCLI (fit/validate/test/predict) plus tool subcommands.

    sonolab fit --config configs/demo/tagging.yaml
    sonolab pack --audio-dir DIR --labels TABLE.tsv --out OUT.h5
    sonolab demo-data --seed 0 --out demo_data
    sonolab asc-pack --tau-dir TAU22_DIR --out-dir data/tau22
    sonolab downstream-pack esc50 --root ESC-50-master --out-dir data/esc50   (also openmic, tau20)
    sonolab complexity mn10_as --json
    sonolab sed-eval --scores DIR --ground-truth TSV --durations TSV
    sonolab models [PATTERN]
    sonolab embed --model mn10_as --checkpoint W.pt --h5 clips.h5 --out emb.h5 [--timestamps]
    sonolab demo --config configs/demo/tagging.yaml    (fit, then test and predict with the best checkpoint)
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, Dict, List, Optional

# jsonargparse >= 4.49 warns about APIs that pytorch-lightning 2.6 still uses.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

TOOLS: Dict[str, str] = {
    "pack": "datamodules.pack:main",
    "demo-data": "datamodules.demo_data:main",
    "complexity": "models.complexity:main",
    "sed-eval": "metrics.sed.cli:main",
    "models": "experiments.cli:list_models_main",
    "demo": "experiments.demo:main",
    "embed": "experiments.embed:main",
    "asc-pack": "datamodules.asc:main",
    "sed-pack": "datamodules.sed.packing:main",
    "downstream-pack": "datamodules.downstream:main",
}


def list_models_main(argv: Optional[List[str]] = None) -> int:
    """``sonolab models [PATTERN]``: the catalogue names with their frontends."""
    from models import get_entry, list_models

    pattern = (argv or ["*"])[0]
    for name in list_models(pattern):
        entry = get_entry(name)
        print(f"{name:28s} frontend={entry.frontend or '-':16s} {entry.description}")
    return 0


def _tool(spec: str) -> Callable[[Optional[List[str]]], int]:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def run_lightning_cli(args: Optional[List[str]] = None, run: bool = True):
    """LightningCLI in subclass mode over every task (LightningModule) and dataset (LightningDataModule)."""
    from pytorch_lightning import LightningDataModule, LightningModule
    from pytorch_lightning.cli import LightningCLI

    import datamodules.asc  # noqa: F401
    import datamodules.sed.datamodule  # noqa: F401
    import datamodules.tagging  # noqa: F401  (subclasses must be importable for class_path resolution)
    import experiments.asc  # noqa: F401
    import experiments.sed  # noqa: F401
    import experiments.tagging  # noqa: F401

    class SonolabCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")

    return SonolabCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {"class_path": "pytorch_lightning.loggers.TensorBoardLogger",
                       "init_args": {"save_dir": "logs", "name": "sonolab"}},
        },
        args=args,
        run=run,
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``sonolab`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        return int(_tool(TOOLS[args[0]])(args[1:]) or 0)
    if args and args[0] in ("-h", "--help") and len(args) == 1:
        print(__doc__)
    run_lightning_cli(argv)  # None: LightningCLI reads sys.argv itself
    return 0


if __name__ == "__main__":
    sys.exit(main())
