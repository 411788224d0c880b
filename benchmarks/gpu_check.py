"""Every GPU figure the issues ask for, in one prepared call (the device machine is lent for minutes at a time).

    python benchmarks/gpu_check.py [--quick] [--out gpu_check.json]

1. Transformer zoo at bf16 autocast, 10 s clips: per backbone the forward time (batch 1) with PyTorch SDPA vs the
   plain attention form, their largest output difference, and clips/s of full training steps (PretrainedSED wrapper
   with the 447-class strong head, batch 32, Adam) with the peak GPU memory.
2. EfficientAT mn10_as: training steps/s at bf16 autocast (batch 64 log-mels of 10 s, Adam).
3. A tiny DDP fit on the GPU: the demo tagging config for a few steps with ``strategy=ddp`` (a subprocess, so a
   failure is reported, not fatal).

Without a CUDA device the script says so and exits 0 (nothing to measure); ``--cpu-smoke`` runs every part with tiny
models on the CPU instead, to check the script itself before a device session. It prints one table per part and
writes all numbers as JSON to ``--out`` (default ``$OUT/gpu_check.json`` when ``$OUT`` is set).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import models  # noqa: E402,F401  (registers the catalogue)
from models import create_model, get_entry  # noqa: E402
from models.transformers.attention import set_sdpa  # noqa: E402
from efficientat_speed import median_seconds  # noqa: E402  (benchmarks/ is the script's folder)

BACKBONES = ("beats_iter3plus_as2m", "atst_frame_base", "fpasst_deit_b_frame", "passt_s_swa_p16_128_ap476",
             "m2d_clap_vit_base_80x1001p16x16", "asit_vit_base_128x592p16")
WRAPPERS = ("pretrainedsed_beats_strong", "pretrainedsed_atst_frame_strong", "pretrainedsed_fpasst_strong",
            "pretrainedsed_m2d_strong", "pretrainedsed_asit_strong")


DEVICE = "cuda"
TINY: Dict[str, object] = {}  # constructor overrides of the --cpu-smoke run


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _build(name: str) -> torch.nn.Module:
    if not TINY:
        return create_model(name)
    tiny = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    if name.startswith("pretrainedsed"):
        return create_model(name, backbone_overrides=tiny)
    return create_model(name, **({"width_mult": 0.1} if name == "mn10_as" else tiny))



def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def backbone_forward(repeats: int) -> List[Dict[str, object]]:
    """Forward of each backbone at bf16, SDPA vs plain."""
    rows = []
    for name in BACKBONES:
        model = _build(name).to(DEVICE).eval()
        x = torch.randn(*get_entry(name).input_shape, device=DEVICE)
        outputs, row = {}, {"model": name}
        for form, enabled in (("sdpa", True), ("plain", False)):
            set_sdpa(model, enabled)
            with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16):
                row[f"{form}_ms"] = 1000 * median_seconds(lambda: model(x), repeats, _sync)
                outputs[form] = _first(model(x)).float()
        row["max_abs_diff_bf16"] = float((outputs["sdpa"] - outputs["plain"]).abs().max())
        rows.append(row)
        _empty_cache()
    return rows


def _empty_cache() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2 ** 30 if DEVICE == "cuda" else float("nan")


def wrapper_training(batch: int, repeats: int) -> List[Dict[str, object]]:
    """Clips/s of training steps of the PretrainedSED wrappers (strong head, BCE, Adam) at bf16."""
    rows = []
    for name in WRAPPERS:
        model = _build(name).to(DEVICE).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        wave = torch.randn(batch, 160000, device=DEVICE)
        target = torch.rand(batch, 447, 250, device=DEVICE)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                strong, _ = model(wave)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(strong.float(), target)
            loss.backward()
            optimizer.step()

        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = median_seconds(step, repeats, _sync)
        rows.append({"model": name, "batch": batch, "clips_per_s": batch / seconds, "peak_gib": _peak_gib()})
        _empty_cache()
    return rows


def mn10_training(batch: int, repeats: int) -> Dict[str, object]:
    """Training steps/s of mn10_as at bf16 on 10 s log-mels."""
    model = _build("mn10_as").to(DEVICE).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    spec = torch.randn(batch, *get_entry("mn10_as").input_shape[1:], device=DEVICE)
    target = torch.rand(batch, 527, device=DEVICE)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            logits = _first(model(spec))
        torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target).backward()
        optimizer.step()

    seconds = median_seconds(step, repeats, _sync)
    return {"model": "mn10_as", "batch": batch, "steps_per_s": 1.0 / seconds, "clips_per_s": batch / seconds}


def ddp_fit(timeout: int) -> Dict[str, object]:
    """The demo tagging config for a few steps with strategy=ddp on the GPU (demo data generated first)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = tempfile.mkdtemp(prefix="gpu_check_")
    env = dict(os.environ, PYTHONPATH=root)
    start = time.perf_counter()
    try:
        data = os.path.join(work, "demo")
        subprocess.run([sys.executable, "-m", "experiments.cli", "demo-data", "--seed", "0", "--out", data,
                        "--no-progress"], cwd=root, env=env, check=True, timeout=timeout, capture_output=True)
        cmd = [sys.executable, "-m", "experiments.cli", "fit", "--config", "configs/demo/tagging.yaml",
               "--trainer.accelerator", "gpu" if DEVICE == "cuda" else "cpu", "--trainer.devices", "1",
               "--trainer.strategy", "ddp",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
               "--trainer.precision", "bf16-mixed", "--trainer.logger.init_args.save_dir", work,
               *(f"--data.init_args.{split}_h5={data}/events_{split}.h5" for split in ("train", "val", "test"))]
        done = subprocess.run(cmd, cwd=root, env=env, timeout=timeout, capture_output=True, text=True)
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {"ok": done.returncode == 0, "seconds": time.perf_counter() - start, "tail": tail}
    except (subprocess.SubprocessError, OSError) as err:
        return {"ok": False, "seconds": time.perf_counter() - start, "tail": [str(err)[-300:]]}


def _table(rows: List[Dict[str, object]]) -> str:
    if not rows:
        return "(none)"
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    widths = [max(len(k), *(len(fmt(r[k])) for r in rows)) for k in keys]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(fmt(r[k]).ljust(w) for k, w in zip(keys, widths)) for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--batch", type=int, default=32, help="clips per training step of the transformers")
    parser.add_argument("--out", default=os.path.join(os.environ["OUT"], "gpu_check.json") if "OUT" in os.environ
                        else "gpu_check.json")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU: checks the script only")
    args = parser.parse_args()
    global DEVICE
    if args.cpu_smoke:
        DEVICE, args.batch, args.quick = "cpu", 2, True
        TINY["tiny"] = True
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured (--cpu-smoke checks the script on the CPU)")
        return 0
    repeats = 1 if args.cpu_smoke else 3 if args.quick else 10
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (smoke run, tiny models)"
    results: Dict[str, object] = {"device": name, "torch": torch.__version__}
    print(f"{results['device']}, torch {results['torch']}")
    parts = (("backbone forward, bf16, 10 s, batch 1", lambda: backbone_forward(repeats)),
             (f"PretrainedSED training steps, bf16, 10 s, batch {args.batch}",
              lambda: wrapper_training(args.batch, max(2, repeats // 2))),
             ("mn10_as training, bf16, batch 64", lambda: [mn10_training(2 if args.cpu_smoke else 64, repeats)]))
    for title, run in parts:
        try:
            rows = run()
        except Exception as err:  # one failing part must not hide the others' numbers
            rows = [{"error": f"{type(err).__name__}: {err}"[:300]}]
        results[title] = rows
        print(f"\n== {title}\n{_table(rows)}")
    if not args.skip_ddp:
        results["ddp fit"] = ddp_fit(timeout=240)
        print(f"\n== tiny DDP fit on the GPU\n{json.dumps(results['ddp fit'], indent=1)}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nnumbers written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
