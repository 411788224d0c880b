"""``sonolab embed``: scene (and timestamp) embeddings of every clip of an HDF5 file, written per clip id.

Weights come from ``--checkpoint`` or ``--pretrained``; an untrained network is used only with an explicit
``--random-init`` (with a warning). Models that can be embedded:

* MN / DyMN (the EfficientAT_HEAR recipes of :mod:`models.efficientat.embeddings`, default ``blocks+mel``);
* PaSST-S ``passt_s_swa_p16_128_ap476`` with the HEAR 2021 recipes of hear21passt (default ``all``: logits and the
  cls/dist embedding, 1295 values);
* the frame-level backbones (BEATs, ATST-F, fPaSST, M2D, ASiT) and the ``pretrainedsed_*`` wrappers: 40 ms frames
  as timestamp embeddings, their mean as the scene embedding (:mod:`models.transformers.embeddings`).

MN, DyMN and PaSST are windowed alike (hear21passt's wrapper): ``--scene-window-ms`` / ``--scene-hop-ms`` for long
clips, ``--window-ms`` (several: concatenated) / ``--hop-ms`` / ``--mel-window-ms`` for timestamps.

Work is done in chunks of clips; each finished chunk is saved atomically under ``OUT.parts/``, so an interrupted
run (or one stopped by a full disk) continues where it stopped, and a clip that cannot be decoded is logged in
``OUT.errors.tsv`` and skipped (so is a clip too short for the timestamp windows). Chunks hold plain arrays only
(they are read without pickle) and record the run that wrote them: model, ``--model-args``, weights (sha256 of the
checkpoint file, ``pretrained`` or ``random``), recipe, ``--timestamps``, the window and hop options,
``--chunk-size`` and the input (clip count, file size and time, hash of the clip names). A rerun with other settings
stops and names what differs; ``--restart`` deletes ``OUT.parts/`` and starts over.
The output appears atomically once every chunk is done:

* HDF5 (``.h5``): ``audio_name`` (bytes), ``scene`` (N, D) float32; with ``--timestamps`` also
  ``timestamp/embedding`` (M, D), ``timestamp/time_ms`` (M,) (window or frame centres) and ``timestamp/index``
  (N + 1 CSR offsets); attributes ``model``, ``weights`` and ``recipe`` (and ``model_args`` if given); the window
  and hop options in milliseconds as attributes of ``scene`` (``window_ms``, ``hop_ms``) and ``timestamp``
  (``window_ms``, ``hop_ms``, ``mel_window_ms``; frame models: ``hop_ms`` 40).
* npz (``.npz``): ``audio_name``, ``scene`` and the strings ``model``, ``weights``, ``recipe`` (timestamp
  embeddings need HDF5).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import errno
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import sys
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import h5py
import numpy as np
import torch
from tqdm import tqdm

from datamodules.format.hdf5 import AudioH5
from models import create_frontend, create_model, list_models
from models.efficientat import embeddings as efficientat
from models.transformers import embeddings as zoo
from models.transformers.vit import TransformerInputError

TIME_KEYS = ("window_ms", "hop_ms", "scene_window_ms", "scene_hop_ms", "mel_window_ms")
RUN_KEYS = ("model", "model_args", "weights", "recipe", "timestamps", *TIME_KEYS, "chunk_size", "input")
CHUNK_KEYS = ("names", "scene", "counts", "stamps", "times", "errors")
HEAR = zoo.TimeOptions()


class EmbedError(ValueError):
    """Bad input, resume state or a failed write of ``sonolab embed``; the message names the file."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonolab embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, metavar="NAME",
                        help="catalogue name: mn*/dymn* (EfficientAT), passt_s_swa_p16_128_ap476 (PaSST-S), a "
                             "frame-level backbone (beats_*, atst_frame_base, fpasst_deit_b_frame, m2d_*, asit_*) "
                             "or pretrainedsed_*")
    parser.add_argument("--model-args", metavar="JSON", type=_json_object, default={},
                        help="constructor arguments replacing the catalogue's, e.g. '{\"num_classes\": 50}' for a "
                             "fine-tuned PaSST")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="weights file (published state dict or Lightning checkpoint)")
    weights.add_argument("--pretrained", action="store_true", help="download the published weights of --model")
    weights.add_argument("--random-init", action="store_true",
                         help="embed with an untrained, randomly initialised network (recorded as weights=random)")
    parser.add_argument("--h5", required=True, help="input HDF5 audio file")
    parser.add_argument("--out", required=True, help="output .h5 or .npz")
    parser.add_argument("--recipe", help=(
        "embedding parts; default per model. MN/DyMN: blocks+mel (default), " + ", ".join(
            r for r in sorted(efficientat.RECIPES) if r != "blocks+mel") + " or '+'-joined parts of mel, b0..b16, "
        "embedding, logits. PaSST (HEAR 2021 mode): all (default: logits + cls/dist embedding, 527 + 768), "
        "embed_only, logits. Frame models: frames (default); pretrainedsed_* also logits (strong head per "
        "frame, weak head for the scene) and all (logits + frames)"))
    parser.add_argument("--timestamps", action="store_true",
                        help="also timestamp embeddings: windows of --window-ms every --hop-ms, or the 40 ms frames "
                             "of frame models (HDF5 output only)")
    time = parser.add_argument_group(
        "time resolution (MN, DyMN, PaSST; frame models give their 40 ms frames)",
        "Defaults are those of the HEAR 2021 PaSST release (hear21passt base). Its variants: base2level "
        "'--window-ms 160 800', base2levelmel '--window-ms 160 640 --mel-window-ms 60', base20sec / base30sec "
        "'--scene-window-ms 20000 --scene-hop-ms 5000' / '30000 ... 10000' (with those weights).")
    time.add_argument("--window-ms", type=int, nargs="+", metavar="MS",
                      help=f"timestamp window length(s); several are concatenated (default {HEAR.window_ms[0]})")
    time.add_argument("--hop-ms", type=int, metavar="MS", help=f"timestamp hop (default {HEAR.hop_ms})")
    time.add_argument("--scene-window-ms", type=int, metavar="MS",
                      help=f"longest clip embedded in one pass; longer ones average windows of this length "
                           f"(default {HEAR.scene_window_ms})")
    time.add_argument("--scene-hop-ms", type=int, metavar="MS",
                      help=f"hop of those scene windows (default {HEAR.scene_hop_ms})")
    time.add_argument("--mel-window-ms", type=int, metavar="MS",
                      help="append the flattened mel of windows of this length to each timestamp embedding "
                           f"(default {HEAR.mel_window_ms}: none)")
    parser.add_argument("--chunk-size", type=int, default=64, help="clips per saved chunk")
    parser.add_argument("--restart", action="store_true",
                        help="delete the finished chunks of an earlier run (OUT.parts/) and start over")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def _json_object(text: str) -> Dict[str, Any]:
    """``--model-args``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"num_classes\": 50}}', got {text}")
    return value


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _time_record(options: Optional[zoo.TimeOptions]) -> Dict[str, object]:
    """The window and hop options in ms (JSON types); frame models (``None``): frames every 40 ms."""
    if options is None:
        return {**dict.fromkeys(TIME_KEYS), "hop_ms": zoo.FRAME_MS}
    return {**dataclasses.asdict(options), "window_ms": list(options.window_ms)}


def _run_identity(args: argparse.Namespace, h5: AudioH5, recipe: str,
                  options: Optional[zoo.TimeOptions]) -> Dict[str, object]:
    """What a chunk depends on; a resumed run must match it key for key."""
    weights = ("pretrained" if args.pretrained else "random" if args.random_init
               else f"sha256:{_file_sha256(args.checkpoint)}")
    names = hashlib.sha256("\n".join(str(n) for n in h5.names).encode()).hexdigest()[:16]
    stat = os.stat(args.h5)
    modified = datetime.datetime.fromtimestamp(stat.st_mtime_ns / 1e9).isoformat()
    return {"model": args.model, "model_args": args.model_args, "weights": weights, "recipe": recipe,
            "timestamps": bool(args.timestamps), **_time_record(options), "chunk_size": int(args.chunk_size),
            "input": f"{len(h5)} clips, {stat.st_size} bytes, modified {modified}, names sha256 {names}"}


def _read_chunk(path: str) -> Dict[str, np.ndarray]:
    """The arrays of a chunk, read without pickle: a planted pickle payload is never run."""
    try:
        with np.load(path, allow_pickle=False) as chunk:
            return {key: chunk[key] for key in ("run", *CHUNK_KEYS)}
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise EmbedError(f"{path}: not a chunk written by sonolab embed ({err}); it was not loaded; "
                         "rerun with --restart to delete the chunks and start over") from None


def _chunk_paths(parts_dir: str) -> List[str]:
    return sorted(glob.glob(os.path.join(parts_dir, "chunk_" + "[0-9]" * 6 + ".npz")))


def _finished_chunks(parts_dir: str, run: Dict[str, object]) -> List[str]:
    """The chunk files of ``parts_dir``, after reading each (no pickle) and checking it was written by this run."""
    paths = _chunk_paths(parts_dir)
    for path in paths:
        try:
            stored = json.loads(str(_read_chunk(path)["run"]))
        except json.JSONDecodeError as err:
            raise EmbedError(f"{path}: unreadable run record ({err}); rerun with --restart to start over") from None
        differs = [f"{key} {stored.get(key)!r} there, {run[key]!r} now"
                   for key in RUN_KEYS if stored.get(key) != run[key]]
        if differs:
            raise EmbedError(f"{parts_dir} holds {len(paths)} chunk(s) of another run ({'; '.join(differs)}); "
                             "rerun with --restart to delete them and start over, or choose another --out")
    return paths


def _write_atomically(path: str, tmp: str, write: Callable[[], None], needed: int, parts_dir: str) -> None:
    """``write()`` creates ``tmp``, which then replaces ``path``; a full disk becomes one clear line."""
    try:
        write()
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if err.errno != errno.ENOSPC and "No space left on device" not in str(err):
            raise
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        raise EmbedError(f"{path}: no space left on device (needs about {_mb(needed)}, {_mb(free)} free); free "
                         f"some space and rerun the same command: the finished chunks in {parts_dir} are resumed"
                         ) from None


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def _embed_chunk(embedder: zoo.Embedder, timestamps: bool, h5: AudioH5, rows: range):
    """Embeds clips ``rows``; one that cannot be decoded, or is too short for the windows, goes to the errors."""
    names, scenes, stamps, times, errors = [], [], [], [], []
    for i in rows:
        try:
            wave = torch.from_numpy(h5.waveform(i, embedder.sample_rate))[None]
        except ValueError as err:
            errors.append((h5.names[i], str(err)))
            continue
        try:
            scene, stamped = embedder(wave, timestamps)
        except (zoo.ClipTooShortError, TransformerInputError) as err:  # the windows checked, so: the clip's length
            errors.append((h5.names[i], str(err)))
            continue
        scenes.append(scene[0].cpu().numpy())
        if stamped is not None:
            stamps.append(stamped[0][0].cpu().numpy())
            times.append(stamped[1][0].cpu().numpy())
        names.append(h5.names[i])
    return names, scenes, stamps, times, errors


def _save_chunk(parts_dir: str, index: int, run: Dict[str, object], names, scenes, stamps, times, errors) -> None:
    path = os.path.join(parts_dir, f"chunk_{index:06d}.npz")
    dim = scenes[0].shape[0] if scenes else 0
    # Unicode arrays, never object arrays: the chunk must be readable with allow_pickle=False.
    arrays = dict(names=np.asarray(names, dtype=str).reshape(-1),
                  scene=np.asarray(scenes, np.float32).reshape(len(scenes), dim),  # a chunk of skipped clips: (0, 0)
                  counts=np.asarray([len(t) for t in times], np.int64),
                  stamps=np.concatenate(stamps).astype(np.float32) if stamps else np.zeros((0, dim), np.float32),
                  times=np.concatenate(times).astype(np.float32) if times else np.zeros(0, np.float32),
                  errors=np.asarray(errors, dtype=str).reshape(-1, 2), run=np.asarray(json.dumps(run, sort_keys=True)))
    tmp = os.path.join(parts_dir, f".tmp_chunk_{index:06d}.npz")  # not matched by _chunk_paths
    _write_atomically(path, tmp, lambda: np.savez(tmp, **arrays), sum(a.nbytes for a in arrays.values()), parts_dir)


def _assemble(parts_dir: str, out: str, run: Dict[str, object]) -> tuple[int, list]:
    chunks = [_read_chunk(p) for p in _chunk_paths(parts_dir)]
    names = [str(n) for c in chunks for n in c["names"]]
    scene = np.concatenate([c["scene"] for c in chunks if len(c["scene"])]) if names else np.zeros((0, 0))
    errors = [tuple(e) for c in chunks for e in c["errors"]]
    attrs = {key: str(run[key]) for key in ("model", "weights", "recipe")}
    if run["model_args"]:
        attrs["model_args"] = json.dumps(run["model_args"], sort_keys=True)
    scene_time = {"window_ms": run["scene_window_ms"], "hop_ms": run["scene_hop_ms"]}
    stamp_time = {key: run[key] for key in ("window_ms", "hop_ms", "mel_window_ms")}
    needed = scene.nbytes + sum(c["stamps"].nbytes + c["times"].nbytes for c in chunks) + 64 * len(names)
    tmp = out + (".tmp.npz" if out.endswith(".npz") else ".tmp")

    def write() -> None:
        if out.endswith(".npz"):
            np.savez(tmp, audio_name=np.asarray(names, dtype=str), scene=scene,
                     **{key: np.asarray(value) for key, value in attrs.items()})
        else:
            with h5py.File(tmp, "w") as f:
                f.attrs.update(attrs)
                f.create_dataset("audio_name", data=np.asarray([n.encode() for n in names]))
                f.create_dataset("scene", data=scene)
                f["scene"].attrs.update({k: v for k, v in scene_time.items() if v is not None})
                if run["timestamps"]:
                    counts = np.concatenate([c["counts"] for c in chunks])
                    group = f.create_group("timestamp")
                    group.attrs.update({k: v for k, v in stamp_time.items() if v is not None})
                    stamps = [c["stamps"] for c in chunks if len(c["stamps"])]  # a chunk of skipped clips: (0, 0)
                    group.create_dataset("embedding", data=np.concatenate(stamps) if stamps else np.zeros((0, 0)))
                    group.create_dataset("time_ms", data=np.concatenate([c["times"] for c in chunks]))
                    group.create_dataset("index", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    _write_atomically(out, tmp, write, needed, parts_dir)
    return len(names), errors


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``sonolab embed``: 0 on success, 2 on bad arguments or input (one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.out.endswith((".h5", ".hdf5", ".npz")):
        parser.error("--out must end in .h5, .hdf5 or .npz")
    if args.timestamps and args.out.endswith(".npz"):
        parser.error("timestamp embeddings are ragged: write them to an .h5 file")
    try:
        return _run(args, parser.prog)
    except EmbedError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2


def _families(names: List[str]) -> str:
    """``names`` shortened to ``prefix*`` for each family (name up to ``_``, digits dropped) whose every catalogue
    name is in ``names``."""
    prefix = {name: name.split("_")[0].rstrip("0123456789") for name in names}
    shown = []
    for family in sorted(set(prefix.values())):
        members = [n for n in names if prefix[n] == family]
        whole = len(members) > 1 and members == fnmatch.filter(list_models(), f"{family}*")
        shown += [f"{family}*"] if whole else members
    return ", ".join(shown)


def _model_kind(name: str) -> str:
    """``"efficientat"`` (MN, DyMN) or the transformer kind of :func:`models.transformers.embeddings.model_kind`."""
    if name in efficientat.embeddable_models():
        return "efficientat"
    kind = zoo.model_kind(name) if name in list_models() else None
    if kind is not None:
        return kind
    names = sorted(efficientat.embeddable_models() + zoo.embeddable_models())
    what = ("is not in the catalogue" if name not in list_models() else
            "is neither an MN/DyMN (feature maps) nor a transformer of the zoo")
    raise EmbedError(f"model {name!r} cannot be embedded: it {what}; models that can be embedded: "
                     f"{_families(names)} ({len(names)} names, see `sonolab models`)")


def _time_options(args: argparse.Namespace, kind: str) -> Optional[zoo.TimeOptions]:
    """The windows and hops of a windowed model (HEAR defaults where not given); ``None`` for frame models."""
    given = {key: getattr(args, key) for key in TIME_KEYS if getattr(args, key) is not None}
    if kind in ("efficientat", "clip"):
        return dataclasses.replace(HEAR, **{**given, "window_ms": tuple(given.get("window_ms", HEAR.window_ms))})
    if given:
        flags = ", ".join("--" + key.replace("_", "-") for key in given)
        verb = "applies" if len(given) == 1 else "apply"
        raise EmbedError(f"{args.model} gives {zoo.FRAME_MS} ms frames: {flags} {verb} to MN, DyMN and PaSST only")
    return None


def _efficientat_embedder(args: argparse.Namespace, recipe: str, options: zoo.TimeOptions) -> zoo.WindowedEmbedder:
    """MN / DyMN through the HEAR windows, :func:`models.efficientat.embeddings.embed` as the one-pass function."""
    try:
        efficientat.recipe_parts(recipe)
    except ValueError as err:
        raise EmbedError(f"--recipe {recipe}: {err}") from None
    model = create_model(args.model, checkpoint=args.checkpoint, pretrained=args.pretrained, **args.model_args)
    model = model.to(args.device).eval()
    frontend = create_frontend(args.model).to(args.device).eval()
    rate = frontend.sample_rate
    return zoo.WindowedEmbedder(lambda audio: efficientat.embed(model, frontend, audio, rate, recipe), rate, options,
                                mel=zoo.flat_frontend(frontend), device=args.device)


def _load_embedder(args: argparse.Namespace) -> Tuple[zoo.Embedder, str, Optional[zoo.TimeOptions]]:
    """The embedder of ``--model`` with its weights, the recipe it uses and its time options."""
    kind = _model_kind(args.model)
    if not (args.checkpoint or args.pretrained or args.random_init):
        raise EmbedError(f"no weights for {args.model}: pass --checkpoint W.pt or --pretrained "
                         "(--random-init embeds with an untrained network, on purpose only)")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise EmbedError(f"{args.checkpoint}: checkpoint file does not exist")
    options = _time_options(args, kind)
    recipe = args.recipe or ("blocks+mel" if kind == "efficientat" else zoo.DEFAULT_RECIPE[kind])
    try:
        if kind == "efficientat":
            embedder = _efficientat_embedder(args, recipe, options)
        else:
            embedder = zoo.load_embedder(args.model, recipe, args.checkpoint, args.pretrained, options,
                                         args.model_args, args.device)
        if args.timestamps and isinstance(embedder, zoo.WindowedEmbedder):
            embedder.check_windows()
    except EmbedError:
        raise
    except zoo.EmbeddingOptionError as err:
        raise EmbedError(str(err)) from None
    except TypeError as err:  # a constructor argument the architecture does not have
        if not args.model_args:
            raise
        raise EmbedError(f"--model-args {json.dumps(args.model_args)} do not fit {args.model} ({err})") from None
    except (RuntimeError, ValueError) as err:  # load_state_dict, a checkpoint filter, a download, a bad size
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        if args.checkpoint:  # the header of a load_state_dict error, then its first mismatch
            raise EmbedError(f"{args.checkpoint}: not weights of {args.model} ({' '.join(lines[:2])})") from None
        raise EmbedError(f"{args.model}: {' '.join(lines[:2])}") from None
    return embedder, recipe, options


def _run(args: argparse.Namespace, prog: str) -> int:
    if not os.path.isfile(args.h5):
        raise EmbedError(f"{args.h5}: input HDF5 file does not exist")
    embedder, recipe, options = _load_embedder(args)
    h5 = AudioH5(args.h5)
    parts_dir = args.out + ".parts"
    if args.restart and os.path.isdir(parts_dir):
        shutil.rmtree(parts_dir)
    os.makedirs(parts_dir, exist_ok=True)
    run = _run_identity(args, h5, recipe, options)
    done = {os.path.basename(p) for p in _finished_chunks(parts_dir, run)}
    if args.random_init:
        print(f"{prog}: warning: {args.model} is randomly initialised (--random-init): the embeddings carry no "
              "learned features", file=sys.stderr)
    starts = range(0, len(h5), args.chunk_size)
    todo = [(k, s) for k, s in enumerate(starts) if f"chunk_{k:06d}.npz" not in done]
    with tqdm(total=len(h5), initial=len(h5) - sum(min(args.chunk_size, len(h5) - s) for _, s in todo),
              desc=f"embedding {os.path.basename(args.h5)}", unit="clip") as bar:
        for k, start in todo:
            rows = range(start, min(start + args.chunk_size, len(h5)))
            _save_chunk(parts_dir, k, run, *_embed_chunk(embedder, args.timestamps, h5, rows))
            bar.update(len(rows))
    count, errors = _assemble(parts_dir, args.out, run)
    if errors:
        with open(args.out + ".errors.tsv", "w") as f:
            f.writelines(f"{name}\t{message}\n" for name, message in errors)
    shutil.rmtree(parts_dir)
    print(f"{count} clips embedded ({recipe}) -> {args.out}; {len(errors)} skipped"
          + (f" (see {args.out}.errors.tsv)" if errors else ""))
    return 0
