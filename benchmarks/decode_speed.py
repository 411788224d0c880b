"""How fast can one data-loader worker feed a model? Prints a table; not a test.

Measures, in this process (= one DataLoader worker):
  * decoded 10 s clips per second from a packed HDF5 file (``AudioH5.waveform``), for mp3 and pcm16;
  * the EfficientAT mel frontend's time per batch of 10 s clips (``models.create_frontend("efficientat_mel")``,
    eval mode, no gradients) on the CPU.

    python benchmarks/decode_speed.py [--clips 48] [--batch 32] [--repeats 5]

Divide the frontend's clips per second by the decode rate to see how many loader workers keep one model busy.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from datamodules.format.audio_io import encode_audio
from datamodules.format.hdf5 import AudioH5, ClipRecord, write_h5

SAMPLE_RATE = 32000
SECONDS = 10.0


def _clip(rng: np.random.Generator) -> np.ndarray:
    """10 s of tones over coloured noise: a codec works about as hard on this as on real recordings."""
    n = int(SAMPLE_RATE * SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    noise = np.cumsum(rng.standard_normal(n)) * 0.002
    noise -= np.convolve(noise, np.ones(256) / 256, mode="same")
    tones = sum(rng.uniform(0.02, 0.1) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) for _ in range(5))
    return np.clip(noise + tones, -1, 1).astype(np.float32)


def _write_file(path: str, codec: str, waves) -> float:
    records = [
        ClipRecord(f"clip_{i:04d}.wav", encode_audio(w, SAMPLE_RATE, codec), SECONDS) for i, w in enumerate(waves)
    ]
    write_h5(path, iter(records), len(records), codec=codec, sample_rate=SAMPLE_RATE)
    return float(np.mean([r.audio.nbytes for r in records]))


def decode_rate(path: str, repeats: int = 2) -> float:
    """Clips per second that one process decodes from ``path`` (file opened and warmed up first)."""
    h5 = AudioH5(path)
    h5.waveform(0)
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(len(h5)):
            h5.waveform(i, length=int(SAMPLE_RATE * SECONDS))
    return repeats * len(h5) / (time.perf_counter() - start)


def frontend_time(batch: int, repeats: int) -> float:
    """Seconds per batch of 10 s clips through the EfficientAT mel frontend (eval mode, no gradients)."""
    import torch

    import models

    frontend = models.create_frontend("efficientat_mel").eval()
    wave = torch.randn(batch, int(SAMPLE_RATE * SECONDS)) * 0.1
    with torch.inference_mode():
        frontend(wave)  # warm-up: allocations, FFT plans
        start = time.perf_counter()
        for _ in range(repeats):
            frontend(wave)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=48, help="10 s clips per file")
    parser.add_argument("--batch", type=int, default=32, help="frontend batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed frontend batches")
    args = parser.parse_args()

    import torch

    rng = np.random.default_rng(0)
    waves = [_clip(rng) for _ in range(args.clips)]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; {args.clips} clips of 10 s at 32 kHz\n")
    print("| measurement | codec | KiB/clip | clips/s per worker | ms per clip / batch |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("mp3", "pcm16"):
            path = os.path.join(tmp, f"{codec}.h5")
            size = _write_file(path, codec, waves)
            rate = decode_rate(path)
            print(f"| decode (AudioH5.waveform) | {codec} | {size / 1024:.0f} | {rate:.1f} | {1000 / rate:.2f} |")
    seconds = frontend_time(args.batch, args.repeats)
    print(f"| efficientat_mel frontend, batch {args.batch}, eval | - | - | {args.batch / seconds:.1f} | "
          f"{1000 * seconds:.1f} per batch |")


if __name__ == "__main__":
    main()
