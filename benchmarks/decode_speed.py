"""How fast does one data-loader worker decode 10 s clips? Prints a table of medians; not a test.

    python benchmarks/decode_speed.py [--clips 200] [--repeats 5] [--codecs mp3 flac ogg pcm16] [--clock cpu]
                                      [--frontend-batch 32]

Per codec, on the same clips (tones over coloured noise at 32 kHz, encoded with ``encode_audio``), one thread:

  * raw:            the floor. PyAV opens the stored bytes and decodes every frame, nothing else (pcm16: the
                    int16 samples scaled to float32);
  * reference:      the EfficientAT loaders' decode, re-implemented as the baseline: PyAV demuxes and decodes,
                    every frame goes through ``to_ndarray``, one concatenation, channels averaged once at the end;
  * decode_audio:   ours; these three decode the stored bytes in memory;
  * raw item:       the floor per dataset item: the row read from a packed HDF5 file (h5py), then raw;
  * reference item: what the EfficientAT dataset does per item: row read, reference decode, pad/crop to 10 s;
  * waveform:       ours, ``AudioH5.waveform(i, length=10 s)`` from the same HDF5 file (row read, decode, crop);
  * to 16 kHz:      the same plus resampling, ``AudioH5.waveform(i, sample_rate=16000, length=5 s)``.

Every repeat times each method over all clips; the methods take turns (their order rotates from repeat to repeat),
so a busy machine slows them alike, and the table shows the median over repeats. ``--clock cpu`` (the default)
counts this process's CPU time, which other processes on a shared machine disturb less than wall time.
Optionally, the EfficientAT mel frontend's clips per second (batch of 10 s clips, eval mode, one thread).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy / torch load their thread pools

import argparse  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List  # noqa: E402

import numpy as np  # noqa: E402

from datamodules.format.audio_io import CODECS, decode_audio, encode_audio, pad_or_crop  # noqa: E402
from datamodules.format.hdf5 import AudioH5, ClipRecord, write_h5  # noqa: E402

SAMPLE_RATE = 32000
TARGET_RATE = 16000
SECONDS = 10.0
METHODS = ("raw", "reference", "decode_audio", "raw item", "reference item", "waveform", "to 16 kHz")


def _clip(rng: np.random.Generator) -> np.ndarray:
    """10 s of tones over coloured noise: a codec works about as hard on this as on real recordings."""
    n = int(SAMPLE_RATE * SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    noise = np.cumsum(rng.standard_normal(n)) * 0.002
    noise -= np.convolve(noise, np.ones(256) / 256, mode="same")
    tones = sum(rng.uniform(0.02, 0.1) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) for _ in range(5))
    return np.clip(noise + tones, -1, 1).astype(np.float32)


def raw_pyav(data: np.ndarray) -> None:
    """The floor of a PyAV decode: open the bytes, decode every frame, keep nothing."""
    import av

    with av.open(io.BytesIO(data.tobytes())) as container:
        for _ in container.decode(audio=0):
            pass


def raw_pcm16(data: np.ndarray) -> np.ndarray:
    """The floor for int16 samples: one scaling pass to float32."""
    return data * np.float32(1 / 32768)


def reference_decode(data: np.ndarray) -> np.ndarray:
    """The EfficientAT loaders' decode, re-implemented: per-frame ``to_ndarray``, one concatenation at the end,
    channels averaged once (integer samples scaled to [-1, 1), which their mp3-only loader never needs)."""
    import av

    with av.open(io.BytesIO(data.tobytes())) as container:
        stream = container.streams.audio[0]
        arrays = [frame.to_ndarray() for packet in container.demux(stream) for frame in packet.decode()]
        fmt, channels = stream.codec_context.format, stream.codec_context.layout.nb_channels
    wave = np.concatenate(arrays, axis=1)  # (channels, n) planar, (1, n * channels) packed
    if wave.dtype.kind == "i":
        wave = wave.astype(np.float32) / float(np.iinfo(wave.dtype).max + 1)
    return wave.mean(axis=0) if fmt.is_planar else wave.reshape(-1, channels).mean(axis=1)


def _methods(codec: str, stored: List[np.ndarray], h5: AudioH5) -> Dict[str, Callable[[int], object]]:
    """Each method as a function of the clip index; None where it does not apply."""
    length = int(SAMPLE_RATE * SECONDS)
    compressed = codec != "pcm16"
    raw = raw_pyav if compressed else raw_pcm16
    return {
        "raw": lambda i: raw(stored[i]),
        "reference": (lambda i: reference_decode(stored[i])) if compressed else None,
        "decode_audio": lambda i: decode_audio(stored[i], codec, SAMPLE_RATE),
        "raw item": lambda i: raw(h5.file[codec][i]),
        "reference item": (lambda i: pad_or_crop(reference_decode(h5.file[codec][i]), length)) if compressed else None,
        "waveform": lambda i: h5.waveform(i, length=length),
        "to 16 kHz": lambda i: h5.waveform(i, sample_rate=TARGET_RATE, length=length * TARGET_RATE // SAMPLE_RATE),
    }


def measure(codecs: List[str], clips: int, repeats: int, clock: Callable[[], float], tmp: str) -> dict:
    """``{codec: {method: [clips per second of each repeat]}}`` plus each codec's mean stored KiB per clip."""
    rng = np.random.default_rng(0)
    waves = [_clip(rng) for _ in range(clips)]
    setups, sizes = {}, {}
    for codec in codecs:
        stored = [encode_audio(w, SAMPLE_RATE, codec) for w in waves]
        path = os.path.join(tmp, f"{codec}.h5")
        records = (ClipRecord(f"clip_{i:04d}.wav", s, SECONDS) for i, s in enumerate(stored))
        write_h5(path, records, clips, codec=codec, sample_rate=SAMPLE_RATE)
        methods = {k: f for k, f in _methods(codec, stored, AudioH5(path)).items() if f is not None}
        for f in methods.values():  # warm-up: imports, the HDF5 handle, cached filters
            f(0)
        setups[codec], sizes[codec] = methods, float(np.mean([s.nbytes for s in stored])) / 1024
    rates = {codec: {k: [] for k in methods} for codec, methods in setups.items()}
    for r in range(repeats):
        for codec, methods in setups.items():
            names = list(methods)
            for name in names[r % len(names):] + names[: r % len(names)]:
                f = methods[name]
                start = clock()
                for i in range(clips):
                    f(i)
                rates[codec][name].append(clips / max(clock() - start, 1e-9))
        print(f"# repeat {r + 1}/{repeats} done", flush=True)
    return {"rates": rates, "kib": sizes}


def frontend_rate(batch: int, repeats: int, clock: Callable[[], float]) -> float:
    """Median clips per second through the EfficientAT mel frontend (eval mode, no gradients)."""
    import torch

    import models

    frontend = models.create_frontend("efficientat_mel").eval()
    wave = torch.randn(batch, int(SAMPLE_RATE * SECONDS)) * 0.1
    rates = []
    with torch.inference_mode():
        frontend(wave)  # warm-up: allocations, FFT plans
        for _ in range(repeats):
            start = clock()
            frontend(wave)
            rates.append(batch / (clock() - start))
    return float(np.median(rates))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if np.isfinite(a) and np.isfinite(b) else "-"


def print_table(result: dict) -> None:
    """Medians in clips/s, then the ratios the targets name."""
    med = {
        codec: {m: float(np.median(v[m])) if m in v else float("nan") for m in METHODS}
        for codec, v in result["rates"].items()
    }
    print("\n| codec | KiB/clip | " + " | ".join(METHODS) + " |")
    print("|---" * (len(METHODS) + 2) + "|")
    for codec, row in med.items():
        cells = ["-" if np.isnan(row[m]) else f"{row[m]:.1f}" for m in METHODS]
        print(f"| {codec} | {result['kib'][codec]:.0f} | " + " | ".join(cells) + " |")
    print("\nclips/s, median over repeats. Ratios (targets in brackets):\n")
    print("| codec | waveform / reference item [>= 1] | decode_audio / reference [>= 1] "
          "| raw / decode_audio [<= 1.15] | raw item / waveform [<= 1.15] | waveform / to 16 kHz [<= 1.3] |")
    print("|---|---|---|---|---|---|")
    for codec, row in med.items():
        print(f"| {codec} | {_ratio(row['waveform'], row['reference item'])} "
              f"| {_ratio(row['decode_audio'], row['reference'])} | {_ratio(row['raw'], row['decode_audio'])} "
              f"| {_ratio(row['raw item'], row['waveform'])} | {_ratio(row['waveform'], row['to 16 kHz'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200, help="10 s clips per codec")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the clips, per method")
    parser.add_argument("--codecs", nargs="+", default=list(CODECS), choices=CODECS)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    parser.add_argument("--frontend-batch", type=int, default=32, help="EfficientAT mel frontend batch; 0 skips it")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"# {datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"visible, load average {os.getloadavg()[0]:.1f}; one thread (torch {torch.__version__}); {args.clips} "
          f"clips of 10 s at 32 kHz, {args.repeats} interleaved repeats, {args.clock} clock")
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.codecs, args.clips, args.repeats, clock, tmp)
    print_table(result)
    if args.frontend_batch > 0:
        rate = frontend_rate(args.frontend_batch, args.repeats, clock)
        print(f"\nefficientat_mel frontend, batch {args.frontend_batch}, eval, one thread: {rate:.1f} clips/s "
              f"({1000 * args.frontend_batch / rate:.0f} ms per batch)")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
