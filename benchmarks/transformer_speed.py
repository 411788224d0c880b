"""CPU speed of the transformer-zoo backbones: forward time with the fused attention (SDPA) and with the plain
reference form of the same maths (``set_sdpa(model, False)``), their largest output difference, and peak memory.

Batch 1, 10 s: the input is the registered frontend's output for 10 s of seeded noise (M2D takes the waveform, so
its time includes its frontend); weights are the seeded random initialisation (the same in both forms). Each
(model, form) pair runs in a fresh interpreter, so ``peak MB`` is that process's peak RSS (``ru_maxrss``: torch,
the model build and the forward) and ``fwd MB`` how far the forward calls raised the resident memory they found
(the peak is reset before them through ``/proc/self/clear_refs``; Linux). Times are medians over ``--repeats``
calls after one warm-up call. Numbers depend on the machine and on how many cores are free:
compare rows of one run.

    python benchmarks/transformer_speed.py [--models atst_frame_base passt_s_swa_p16_128_ap476] [--repeats 3]
                                           [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import torch

from models import create_frontend, create_model, get_entry, list_models
from models.transformers.attention import set_sdpa
from models.transformers.frame_sed import FrameSED

FORMS = ("sdpa", "plain")


def zoo_backbones() -> List[str]:
    """Catalogue names of the transformer backbones (the FrameSED wrappers left out)."""
    return [n for n in list_models() if get_entry(n).builder.__module__.startswith("models.transformers")
            and get_entry(n).builder is not FrameSED]


def _rss_mb() -> float:
    """Resident memory now (Linux ``/proc/self/statm``), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _reset_peak() -> bool:
    """Resets the process's peak RSS to its current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def model_input(name: str) -> torch.Tensor:
    """The backbone's 10 s input: its frontend's output for seeded noise, or the noise itself (waveform models)."""
    entry = get_entry(name)
    generator = torch.Generator().manual_seed(1)
    if entry.frontend is None:
        return 0.1 * torch.randn(entry.input_shape, generator=generator)
    frontend = create_frontend(name).eval()
    wave = 0.1 * torch.randn(1, 10 * int(getattr(frontend, "sample_rate", 16000)), generator=generator)
    with torch.no_grad():
        x = frontend(wave)
    if tuple(x.shape) != entry.input_shape:
        raise ValueError(f"{name}: 10 s through {entry.frontend} gave {tuple(x.shape)}, the catalogue registers "
                         f"{entry.input_shape}")
    return x


def worker(name: str, form: str, repeats: int, out_path: str) -> Dict[str, float]:
    """Builds ``name`` with attention ``form``, times its forward, saves its outputs to ``out_path``."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    if set_sdpa(model, form == "sdpa") == 0:
        raise ValueError(f"{name} has no attention module with an sdpa switch")
    x = model_input(name)
    build_peak = _peak_mb()
    reset = _reset_peak()
    rss_before = _rss_mb()
    times = []
    with torch.no_grad():
        out = model(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    outputs = [t.contiguous() for t in (out if isinstance(out, tuple) else (out,))]
    torch.save(outputs, out_path)
    return {"ms": 1000 * sorted(times)[len(times) // 2], "peak_mb": max(build_peak, _peak_mb()),
            "fwd_mb": _peak_mb() - rss_before if reset else float("nan"),
            "output": " + ".join("x".join(map(str, t.shape)) for t in outputs)}


def run_pair(name: str, repeats: int, threads: int, folder: str) -> Dict[str, object]:
    """Both forms of ``name``, each in a fresh interpreter; returns their figures and the max abs difference."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    results: Dict[str, object] = {}
    outputs = {}
    for form in FORMS:
        path = os.path.join(folder, f"{name}_{form}.pt")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, form, path,
                               "--repeats", str(repeats), "--threads", str(threads)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} ({form}) failed:\n{proc.stderr[-3000:]}")
        results[form] = json.loads(proc.stdout.strip().splitlines()[-1])
        outputs[form] = torch.load(path, weights_only=True)
    results["max_abs_diff"] = max(float((a - b).abs().max()) for a, b in zip(outputs["sdpa"], outputs["plain"]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="catalogue names (default: every zoo backbone)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward calls per form (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--worker", nargs=3, metavar=("NAME", "FORM", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeats, args.worker[2])))
        return
    names = args.models or zoo_backbones()
    unknown = [n for n in names if n not in zoo_backbones()]
    if unknown:
        parser.error(f"not a transformer-zoo backbone: {', '.join(unknown)}; choose from {', '.join(zoo_backbones())}")
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch 1 x 10 s, median of {args.repeats} call(s) "
          f"after a warm-up; one fresh process per model and form")
    header = (f"{'model':<33} {'output':<17} {'SDPA ms':>8} {'plain ms':>8} {'plain/SDPA':>10} {'max |diff|':>10} "
              f"{'peak MB SDPA':>12} {'peak MB plain':>13} {'fwd MB SDPA':>11} {'fwd MB plain':>12}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            r = run_pair(name, args.repeats, args.threads, folder)
            fused, plain = r["sdpa"], r["plain"]
            print(f"{name:<33} {fused['output']:<17} {fused['ms']:>8.0f} {plain['ms']:>8.0f} "
                  f"{plain['ms'] / fused['ms']:>10.2f} {r['max_abs_diff']:>10.1e} {fused['peak_mb']:>12.0f} "
                  f"{plain['peak_mb']:>13.0f} {fused['fwd_mb']:>11.0f} {plain['fwd_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
