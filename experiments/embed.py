"""``sonolab embed``: scene (and timestamp) embeddings of every clip of an HDF5 file, written per clip id.

Work is done in chunks of clips; each finished chunk is saved atomically under ``OUT.parts/``, so an interrupted
run continues where it stopped, and a clip that cannot be decoded is logged in ``OUT.errors.tsv`` and skipped.
The output appears atomically once every chunk is done:

* HDF5 (``.h5``): ``audio_name`` (bytes), ``scene`` (N, D) float32; with ``--timestamps`` also
  ``timestamp/embedding`` (M, D), ``timestamp/time_ms`` (M,) and ``timestamp/index`` (N + 1 CSR offsets).
* npz (``.npz``): ``audio_name`` and ``scene`` (timestamp embeddings need HDF5).
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
from typing import List, Optional

import h5py
import numpy as np
import torch
from tqdm import tqdm

from datamodules.h5format import AudioH5
from models import create_frontend, create_model
from models.efficientat.embeddings import RECIPES, scene_embeddings, timestamp_embeddings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonolab embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="catalogue name, e.g. mn10_as")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="weights file (published state dict or Lightning checkpoint)")
    weights.add_argument("--pretrained", action="store_true", help="download the published weights of --model")
    parser.add_argument("--h5", required=True, help="input HDF5 audio file")
    parser.add_argument("--out", required=True, help="output .h5 or .npz")
    parser.add_argument("--recipe", default="blocks+mel", choices=sorted(RECIPES), help="embedding parts")
    parser.add_argument("--timestamps", action="store_true", help="also 160 ms / 50 ms timestamp embeddings")
    parser.add_argument("--chunk-size", type=int, default=64, help="clips per saved chunk")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


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


def _save_chunk(parts_dir: str, index: int, names, scenes, stamps, times, errors) -> None:
    path = os.path.join(parts_dir, f"chunk_{index:06d}.npz")
    tmp = path + ".tmp.npz"
    dim = scenes[0].shape[0] if scenes else 0
    np.savez(tmp, names=np.asarray(names, dtype=object), scene=np.asarray(scenes, np.float32).reshape(-1, dim),
             counts=np.asarray([len(t) for t in times], np.int64),
             stamps=np.concatenate(stamps).astype(np.float32) if stamps else np.zeros((0, dim), np.float32),
             times=np.concatenate(times).astype(np.float32) if times else np.zeros(0, np.float32),
             errors=np.asarray(errors, dtype=object).reshape(-1, 2))
    os.replace(tmp, path)


def _assemble(parts_dir: str, out: str, timestamps: bool) -> tuple[int, list]:
    chunks = [np.load(p, allow_pickle=True) for p in sorted(glob.glob(os.path.join(parts_dir, "chunk_*.npz")))]
    names = [str(n) for c in chunks for n in c["names"]]
    scene = np.concatenate([c["scene"] for c in chunks if len(c["scene"])]) if names else np.zeros((0, 0))
    errors = [tuple(e) for c in chunks for e in c["errors"]]
    tmp = out + ".tmp"
    if out.endswith(".npz"):
        np.savez(tmp, audio_name=np.asarray(names), scene=scene)
        os.replace(tmp + ".npz", out)
    else:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("audio_name", data=np.asarray([n.encode() for n in names]))
            f.create_dataset("scene", data=scene)
            if timestamps:
                counts = np.concatenate([c["counts"] for c in chunks])
                group = f.create_group("timestamp")
                group.create_dataset("embedding", data=np.concatenate([c["stamps"] for c in chunks]))
                group.create_dataset("time_ms", data=np.concatenate([c["times"] for c in chunks]))
                group.create_dataset("index", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        os.replace(tmp, out)
    return len(names), errors


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``sonolab embed``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.out.endswith((".h5", ".hdf5", ".npz")):
        parser.error("--out must end in .h5, .hdf5 or .npz")
    if args.timestamps and args.out.endswith(".npz"):
        parser.error("timestamp embeddings are ragged: write them to an .h5 file")
    h5 = AudioH5(args.h5)
    model = create_model(args.model, checkpoint=args.checkpoint, pretrained=args.pretrained).to(args.device).eval()
    frontend = create_frontend(args.model).to(args.device).eval()
    rate = frontend.sample_rate
    parts_dir = args.out + ".parts"
    os.makedirs(parts_dir, exist_ok=True)
    starts = range(0, len(h5), args.chunk_size)
    todo = [(k, s) for k, s in enumerate(starts) if not os.path.exists(os.path.join(parts_dir, f"chunk_{k:06d}.npz"))]
    with tqdm(total=len(h5), initial=len(h5) - sum(min(args.chunk_size, len(h5) - s) for _, s in todo),
              desc=f"embedding {os.path.basename(args.h5)}", unit="clip") as bar:
        for k, start in todo:
            rows = range(start, min(start + args.chunk_size, len(h5)))
            _save_chunk(parts_dir, k, *_embed_chunk(model, frontend, h5, rows, rate, args.recipe, args.timestamps))
            bar.update(len(rows))
    count, errors = _assemble(parts_dir, args.out, args.timestamps)
    if errors:
        with open(args.out + ".errors.tsv", "w") as f:
            f.writelines(f"{name}\t{message}\n" for name, message in errors)
    shutil.rmtree(parts_dir)
    print(f"{count} clips embedded ({args.recipe}) -> {args.out}; {len(errors)} skipped"
          + (f" (see {args.out}.errors.tsv)" if errors else ""))
    return 0
