"""``sonolab embed``: scene (and timestamp) embeddings of every clip of an HDF5 file, written per clip id.

Weights come from ``--checkpoint`` or ``--pretrained``; an untrained network is used only with an explicit
``--random-init`` (with a warning). Only models exposing feature maps (MN, DyMN) can be embedded.

Work is done in chunks of clips; each finished chunk is saved atomically under ``OUT.parts/``, so an interrupted
run (or one stopped by a full disk) continues where it stopped, and a clip that cannot be decoded is logged in
``OUT.errors.tsv`` and skipped. Chunks hold plain arrays only (they are read without pickle) and record the run
that wrote them: model, weights (sha256 of the checkpoint file, ``pretrained`` or ``random``), recipe,
``--timestamps``, ``--chunk-size`` and the input (clip count, file size and time, hash of the clip names). A rerun with
other settings stops and names what differs; ``--restart`` deletes ``OUT.parts/`` and starts over.
The output appears atomically once every chunk is done:

* HDF5 (``.h5``): ``audio_name`` (bytes), ``scene`` (N, D) float32; with ``--timestamps`` also
  ``timestamp/embedding`` (M, D), ``timestamp/time_ms`` (M,) and ``timestamp/index`` (N + 1 CSR offsets); attributes
  ``model``, ``weights`` and ``recipe``.
* npz (``.npz``): ``audio_name``, ``scene`` and the strings ``model``, ``weights``, ``recipe`` (timestamp
  embeddings need HDF5).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import glob
import hashlib
import json
import os
import shutil
import sys
import zipfile
from typing import Callable, Dict, List, Optional

import h5py
import numpy as np
import torch
from tqdm import tqdm

from datamodules.format.hdf5 import AudioH5
from models import create_frontend, create_model
from models.efficientat.embeddings import RECIPES, check_embeddable, scene_embeddings, timestamp_embeddings

RUN_KEYS = ("model", "weights", "recipe", "timestamps", "chunk_size", "input")
CHUNK_KEYS = ("names", "scene", "counts", "stamps", "times", "errors")


class EmbedError(ValueError):
    """Bad input, resume state or a failed write of ``sonolab embed``; the message names the file."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonolab embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="catalogue name, e.g. mn10_as")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="weights file (published state dict or Lightning checkpoint)")
    weights.add_argument("--pretrained", action="store_true", help="download the published weights of --model")
    weights.add_argument("--random-init", action="store_true",
                         help="embed with an untrained, randomly initialised network (recorded as weights=random)")
    parser.add_argument("--h5", required=True, help="input HDF5 audio file")
    parser.add_argument("--out", required=True, help="output .h5 or .npz")
    parser.add_argument("--recipe", default="blocks+mel", choices=sorted(RECIPES), help="embedding parts")
    parser.add_argument("--timestamps", action="store_true", help="also 160 ms / 50 ms timestamp embeddings")
    parser.add_argument("--chunk-size", type=int, default=64, help="clips per saved chunk")
    parser.add_argument("--restart", action="store_true",
                        help="delete the finished chunks of an earlier run (OUT.parts/) and start over")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_identity(args: argparse.Namespace, h5: AudioH5) -> Dict[str, object]:
    """What a chunk depends on; a resumed run must match it key for key."""
    weights = ("pretrained" if args.pretrained else "random" if args.random_init
               else f"sha256:{_file_sha256(args.checkpoint)}")
    names = hashlib.sha256("\n".join(str(n) for n in h5.names).encode()).hexdigest()[:16]
    stat = os.stat(args.h5)
    modified = datetime.datetime.fromtimestamp(stat.st_mtime_ns / 1e9).isoformat()
    return {"model": args.model, "weights": weights, "recipe": args.recipe, "timestamps": bool(args.timestamps),
            "chunk_size": int(args.chunk_size),
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


def _embed_chunk(model, frontend, h5: AudioH5, rows: range, rate: int, recipe: str, timestamps: bool):
    names, scenes, stamps, times, errors = [], [], [], [], []
    for i in rows:
        try:
            wave = torch.from_numpy(h5.waveform(i, rate))[None]
        except ValueError as err:
            errors.append((h5.names[i], str(err)))
            continue
        with torch.no_grad():
            scenes.append(scene_embeddings(model, frontend, wave, rate, recipe)[0].cpu().numpy())
            if timestamps:
                emb, ms = timestamp_embeddings(model, frontend, wave, rate, recipe)
                stamps.append(emb[0].cpu().numpy())
                times.append(ms[0].cpu().numpy())
        names.append(h5.names[i])
    return names, scenes, stamps, times, errors


def _save_chunk(parts_dir: str, index: int, run: Dict[str, object], names, scenes, stamps, times, errors) -> None:
    path = os.path.join(parts_dir, f"chunk_{index:06d}.npz")
    dim = scenes[0].shape[0] if scenes else 0
    # Unicode arrays, never object arrays: the chunk must be readable with allow_pickle=False.
    arrays = dict(names=np.asarray(names, dtype=str).reshape(-1), scene=np.asarray(scenes, np.float32).reshape(-1, dim),
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
                if run["timestamps"]:
                    counts = np.concatenate([c["counts"] for c in chunks])
                    group = f.create_group("timestamp")
                    group.create_dataset("embedding", data=np.concatenate([c["stamps"] for c in chunks]))
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


def _load_model(args: argparse.Namespace) -> torch.nn.Module:
    try:
        check_embeddable(args.model)
    except ValueError as err:
        raise EmbedError(str(err)) from None
    if not (args.checkpoint or args.pretrained or args.random_init):
        raise EmbedError(f"no weights for {args.model}: pass --checkpoint W.pt or --pretrained "
                         "(--random-init embeds with an untrained network, on purpose only)")
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise EmbedError(f"{args.checkpoint}: checkpoint file does not exist")
    try:
        model = create_model(args.model, checkpoint=args.checkpoint, pretrained=args.pretrained)
    except RuntimeError as err:  # load_state_dict: missing / unexpected keys, shape mismatches
        raise EmbedError(f"{args.checkpoint}: not weights of {args.model} ({str(err).splitlines()[0]})") from None
    return model.to(args.device).eval()


def _run(args: argparse.Namespace, prog: str) -> int:
    if not os.path.isfile(args.h5):
        raise EmbedError(f"{args.h5}: input HDF5 file does not exist")
    model = _load_model(args)
    h5 = AudioH5(args.h5)
    frontend = create_frontend(args.model).to(args.device).eval()
    rate = frontend.sample_rate
    parts_dir = args.out + ".parts"
    if args.restart and os.path.isdir(parts_dir):
        shutil.rmtree(parts_dir)
    os.makedirs(parts_dir, exist_ok=True)
    run = _run_identity(args, h5)
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
            _save_chunk(parts_dir, k, run, *_embed_chunk(model, frontend, h5, rows, rate, args.recipe, args.timestamps))
            bar.update(len(rows))
    count, errors = _assemble(parts_dir, args.out, run)
    if errors:
        with open(args.out + ".errors.tsv", "w") as f:
            f.writelines(f"{name}\t{message}\n" for name, message in errors)
    shutil.rmtree(parts_dir)
    print(f"{count} clips embedded ({args.recipe}) -> {args.out}; {len(errors)} skipped"
          + (f" (see {args.out}.errors.tsv)" if errors else ""))
    return 0
