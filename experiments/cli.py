"""The ``sonolab`` command: LightningCLI (fit/validate/test/predict) plus tool subcommands.

    sonolab fit --config configs/demo/tagging.yaml
    sonolab pack --audio-dir DIR --labels TABLE.tsv --out OUT.h5
    sonolab demo-data --seed 0 --out demo_data
    sonolab asc-pack --tau-dir TAU22_DIR --out-dir data/tau22
    sonolab downstream-pack esc50 --root ESC-50-master --out-dir data/esc50   (also openmic, tau20, fsd50k)
    sonolab audioset-pack --segments eval_segments.csv --class-labels class_labels_indices.csv --audio-dir DIR \
        --out eval.h5
    sonolab dir-pack --ir-dir MicIRP --out-dir data/micirp [--sample-rate 44100]
    sonolab complexity mn10_as --json
    sonolab sed-eval --scores DIR --ground-truth TSV --durations TSV
    sonolab models [PATTERN]
    sonolab ensemble-logits --inputs teacher1.h5 teacher2.h5 --out ensemble.h5
    sonolab embed --model mn10_as --checkpoint W.pt --h5 clips.h5 --out emb.h5 [--timestamps]
    sonolab demo --config configs/demo/tagging.yaml    (fit, then test and predict with the best checkpoint)
"""
from __future__ import annotations

import importlib
import os
import shlex
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

# jsonargparse >= 4.49 warns about APIs that pytorch-lightning 2.6 still uses.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

TOOLS: Dict[str, str] = {
    "pack": "experiments.commands.pack:main",
    "demo-data": "experiments.commands.demo_data:main",
    "complexity": "experiments.commands.complexity:main",
    "sed-eval": "metrics.sed.cli:main",
    "models": "experiments.cli:list_models_main",
    "demo": "experiments.demo:main",
    "embed": "experiments.embed:main",
    "asc-pack": "experiments.commands.asc_pack:main",
    "sed-pack": "experiments.commands.sed_pack:main",
    "downstream-pack": "experiments.commands.downstream_pack:main",
    "audioset-pack": "experiments.commands.audioset_pack:main",
    "dir-pack": "experiments.commands.dir_pack:main",
    "ensemble-logits": "experiments.commands.ensemble_logits:main",
}
TRAINING_TOOLS = ("demo",)  # tools that fit: SIGTERM and --ckpt_path errors are reported as for `sonolab fit`


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


class CheckpointPathError(ValueError):
    """A ``--ckpt_path`` that names no checkpoint (``sonolab`` prints it as one error line and exits with 2)."""


# ckpt_path values Lightning resolves itself (besides "last", which sonolab resolves, see resolve_ckpt_path)
_LIGHTNING_CKPT_NAMES = ("best", "hpc", "registry")
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, as a shell reports a process ended by the signal


def _version_folder(version: Any) -> str:
    """A logger's run folder: ``version_<n>`` for a number, the string itself otherwise (as TensorBoard/CSV do)."""
    return version if isinstance(version, str) else f"version_{version}"


def resolve_ckpt_path(config: Any, pin_version: bool) -> None:
    """Turns ``ckpt_path: last`` of one subcommand's config into the newest run's ``last.ckpt``; checks other paths.

    The run is looked up in the configured logger's ``save_dir/name/version_*`` (or its fixed ``version``): the
    highest version that has ``checkpoints/last.ckpt``. With ``pin_version`` (``fit``), the logger is set to that
    version, so that the resumed run continues its event files, ``config.yaml`` and checkpoints in the same folder.

    Raises:
        CheckpointPathError: No such run, or a checkpoint file that does not exist.
    """
    path = config.get("ckpt_path")
    if not path or path in _LIGHTNING_CKPT_NAMES or str(path).startswith("registry:") or "://" in str(path):
        return
    if path != "last":
        if not os.path.isfile(path):
            raise CheckpointPathError(f"--ckpt_path {path}: no such checkpoint file")
        return
    logger = config.trainer.logger
    logger = logger[0] if isinstance(logger, list) and logger else logger
    init = getattr(logger, "init_args", None)
    if init is None or not init.get("save_dir"):
        raise CheckpointPathError("--ckpt_path last: needs a logger with a save_dir (TensorBoardLogger, CSVLogger) "
                                  "to find the run to continue")
    root = os.path.join(str(init.save_dir), str(init.name)) if init.get("name") else str(init.save_dir)
    fixed = init.get("version")
    if fixed is not None:
        versions = [fixed]
    else:
        numbers = [name.split("_", 1)[1] for name in (os.listdir(root) if os.path.isdir(root) else [])
                   if name.startswith("version_")]
        versions = sorted((int(number) for number in numbers if number.isdigit()), reverse=True)
    for version in versions:
        last = os.path.join(root, _version_folder(version), "checkpoints", "last.ckpt")
        if os.path.isfile(last):
            config.ckpt_path = last
            if pin_version:
                init.version = version
            return
    pattern = "version_*" if fixed is None else _version_folder(fixed)
    raise CheckpointPathError(f"--ckpt_path last: no checkpoint of this config under "
                              f"{os.path.join(root, pattern, 'checkpoints', 'last.ckpt')}")


def _resume_command(args: List[str]) -> str:
    """The command line continuing a stopped ``sonolab fit``/``demo``: the same arguments with ``--ckpt_path last``."""
    kept, skip = [], False
    for arg in args[1:]:
        if skip or arg.startswith("--ckpt_path="):
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        kept.append(arg)
    return shlex.join(["sonolab", "fit", *kept, "--ckpt_path", "last"])


def _report_sigterm(args: List[str], stop: BaseException) -> int:
    """Prints where the checkpoint written on SIGTERM is and how to resume; returns the exit code."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        path = getattr(stop, "checkpoint_path", None)
        tool = args[0] if args else "fit"
        if path:
            print(f"sonolab {tool}: stopped by SIGTERM; resumable checkpoint: {path}\n"
                  f"resume with: {_resume_command(args)}", file=sys.stderr)
        else:
            print(f"sonolab {tool}: stopped by SIGTERM (no checkpoint written)", file=sys.stderr)
    return SIGTERM_EXIT_CODE


def eval_options(class_path: Any) -> Tuple[str, ...]:
    """The evaluation hyper-parameters a task class declares (``EVAL_OPTIONS``); none for an unknown class."""
    module, _, name = str(class_path).rpartition(".")
    try:
        return tuple(getattr(getattr(importlib.import_module(module), name), "EVAL_OPTIONS", ()))
    except (ImportError, AttributeError, ValueError):
        return ()


def keep_eval_options(run_model: Any, merged_model: Any) -> Dict[str, Tuple[Any, Any]]:
    """Puts this run's values of the task's evaluation options back into the model config after LightningCLI merged
    a checkpoint's hyper-parameters over it (which would evaluate with the fit's precision, engine, filters).

    Args:
        run_model: The run's ``model`` config (class_path, init_args) from its config files and command line,
            taken before the merge.
        merged_model: The ``model`` config after the merge; changed in place.

    Returns:
        Option name -> (this run's value, now in effect; the checkpoint's value).
    """
    run_args = run_model.get("init_args") if run_model is not None else None
    merged_args = merged_model.get("init_args") if merged_model is not None else None
    if run_args is None or merged_args is None:
        return {}
    kept = {}
    for name in eval_options(merged_model.get("class_path")):
        if name in run_args:
            kept[name] = (run_args[name], merged_args.get(name))
            merged_args[name] = run_args[name]
    return kept


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

    from callbacks.graceful_stop import GracefulStop
    from callbacks.rng_state import RNGStateCheckpoint

    class SonolabCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")

        def parse_arguments(self, parser, args) -> None:
            # before LightningCLI reads the checkpoint's hyper-parameters and before the logger picks a new version
            super().parse_arguments(parser, args)
            subcommand = self.config.get("subcommand")
            if subcommand:
                resolve_ckpt_path(self.config[subcommand], pin_version=subcommand == "fit")

        def _parse_ckpt_path(self) -> None:
            # LightningCLI (2.6) merges the checkpoint's hyper-parameters over this run's config here; the task's
            # evaluation options (EVAL_OPTIONS) keep this run's values, so the instantiated task, its hparams and
            # the saved config.yaml say what is evaluated
            from pytorch_lightning.utilities.rank_zero import rank_zero_info

            subcommand = self.config.get("subcommand")
            run_model = self.config[subcommand].get("model") if subcommand else None
            run_model = run_model.clone() if run_model is not None else None
            super()._parse_ckpt_path()
            if run_model is None or not os.path.isfile(str(self.config[subcommand].get("ckpt_path") or "")):
                return  # no checkpoint hyper-parameters were merged
            kept = keep_eval_options(run_model, self.config[subcommand].get("model"))
            if kept:
                options = ", ".join(f"{name}={value!r}" + (f" (checkpoint: {saved!r})" if saved != value else "")
                                    for name, (value, saved) in kept.items())
                rank_zero_info(f"sonolab {subcommand}: evaluation options of this run: {options}")

    return SonolabCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {"class_path": "pytorch_lightning.loggers.TensorBoardLogger",
                       "init_args": {"save_dir": "logs", "name": "sonolab"}},
            # added to the callbacks of every config: exact resume (RNG states), last.ckpt on SIGTERM
            "callbacks": [RNGStateCheckpoint(), GracefulStop()],
        },
        args=args,
        run=run,
    )


def _input_errors() -> tuple:
    """The exception types that say the user's input is wrong (their messages name the file, field or option): the
    CLI prints them as one line instead of a traceback. Other exceptions are bugs and keep their traceback."""
    from datamodules.format.audio_io import AudioDecodeError
    from datamodules.format.hdf5 import H5LayoutError
    from datamodules.format.label_tables import LabelTableError
    from datamodules.format.strong_logits import LogitsFileError
    from datamodules.format.text import TableTextError
    from datamodules.label_space import LabelSpaceError
    from datamodules.sed.mixup_groups import MixupGroupsError
    from datamodules.sources.common import LayoutError
    from datamodules.teacher import TeacherLogitsError
    from metrics.sed.scores import SEDInputError
    from models.transformers.checkpoints import CheckpointLayoutError

    return (CheckpointPathError, AudioDecodeError, H5LayoutError, LabelTableError, TableTextError, LabelSpaceError,
            LayoutError, TeacherLogitsError, SEDInputError, LogitsFileError, CheckpointLayoutError,
            MixupGroupsError)


def _one_line(err: BaseException) -> str:
    """The error's message on one line; for an error re-raised from a DataLoader worker (whose message carries the
    worker's traceback), the original exception's last line."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split())


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``sonolab`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS and args[0] not in TRAINING_TOOLS:
        return int(_tool(TOOLS[args[0]])(args[1:]) or 0)
    if args and args[0] in ("-h", "--help") and len(args) == 1:
        print(__doc__)
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    try:
        if args and args[0] in TRAINING_TOOLS:
            return int(_tool(TOOLS[args[0]])(args[1:]) or 0)
        run_lightning_cli(argv)  # None: LightningCLI reads sys.argv itself
    except _input_errors() as err:
        print(f"sonolab {args[0] if args else 'fit'}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except SIGTERMException as stop:
        return _report_sigterm(args, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
