"""CPU speed of MN/DyMN: milliseconds per 10 s clip for training (forward + backward) and inference (forward).

The models take the log-mel of a 10 s clip, (B, 1, 128, 1000); the frontend is timed separately. Numbers depend on
the machine and on how many threads are free; compare rows of one run, not runs on different machines.

    python benchmarks/efficientat_speed.py [--batch 4] [--repeats 3] [--models mn10_as dymn10_as]
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, List

import torch

import models  # noqa: F401  (registers the catalogue)
from models import create_frontend, create_model, get_entry


def median_seconds(fn: Callable[[], None], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up call; ``sync`` runs after each call (e.g.
    ``torch.cuda.synchronize``, so that asynchronous device work is inside the timing)."""
    fn()
    sync()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="clips per step")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--models", nargs="+", default=["mn10_as", "dymn10_as"])
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x 10 s clips")
    header = f"{'model':<12} {'train fwd+bwd ms/clip':>22} {'infer fwd ms/clip':>18}"
    print(header)
    print("-" * len(header))
    for name in args.models:
        model = create_model(name)
        spec = torch.randn(args.batch, 1, *get_entry(name).input_shape[2:])
        targets = torch.rand(args.batch, 527)

        def train_step() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            logits, _ = model(spec)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, targets).backward()

        def infer_step() -> None:
            model.eval()
            with torch.no_grad():
                model(spec)

        train_ms = 1000 * median_seconds(train_step, args.repeats) / args.batch
        infer_ms = 1000 * median_seconds(infer_step, args.repeats) / args.batch
        print(f"{name:<12} {train_ms:>22.1f} {infer_ms:>18.1f}")
    frontend = create_frontend("mn10_as").eval()
    wave = torch.randn(args.batch, 320000)
    with torch.no_grad():
        mel_ms = 1000 * median_seconds(lambda: frontend(wave), args.repeats) / args.batch
    print(f"{'frontend':<12} {'-':>22} {mel_ms:>18.1f}   (efficientat_mel, 10 s at 32 kHz -> 128 x 1000)")


if __name__ == "__main__":
    main()
