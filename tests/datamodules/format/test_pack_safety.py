"""The packer never loses or overwrites work: outputs that are inputs, a second packer, a full disk, bad rates."""
import errno
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import datamodules.format.pack as pack_module
import datamodules.format.parts as parts
from datamodules.format.hdf5 import AudioH5
from datamodules.format.checks import PackError, check_sample_rate
from datamodules.format.pack import PackItem, pack
from datamodules.format.parts import DiskFullError, OutputLockedError
from datamodules.format.parts import LOCK_SUFFIX, WORK_DIR_SUFFIX
from experiments.commands.pack import main

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _clips(folder, n: int = 6, seconds: float = 0.5, rate: int = 16000):
    """n noise clips as WAV files, a weak-label table for them; returns (items, table path)."""
    os.makedirs(folder, exist_ok=True)
    rows = ["filename\tevent_labels"]
    for i in range(n):
        wave = 0.2 * np.random.default_rng(i).standard_normal(int(seconds * rate))
        sf.write(os.path.join(folder, f"c{i}.wav"), wave.astype(np.float32), rate)
        rows.append(f"c{i}.wav\tdog")
    table = os.path.join(folder, "labels.tsv")
    with open(table, "w") as f:
        f.write("\n".join(rows) + "\n")
    items = [PackItem(path=os.path.join(folder, f"c{i}.wav"), name=f"c{i}.wav", weak=[0]) for i in range(n)]
    return items, table


def _argv(folder, table, out, *extra, rate: int = 16000):
    return ["--audio-dir", str(folder), "--labels", str(table), "--out", str(out), "--codec", "pcm16",
            "--sample-rate", str(rate), "--workers", "0", "--chunk-items", "2", "--no-progress", *extra]


# ---------------------------------------------------------------------------------------------------------------
# An output that is an input
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.bad_input
def test_out_that_is_an_input_is_refused(tmp_path, capsys):
    folder = tmp_path / "audio"
    items, table = _clips(folder, n=2)
    before = open(table, "rb").read()
    link = tmp_path / "link.h5"
    os.symlink(table, link)
    log_named_table = tmp_path / "o.h5.errors.tsv"
    shutil.copy(table, log_named_table)
    cases = [
        (table, f"sonolab pack: error: --out {table} is the label table {table}; choose another output file"),
        (link, f"sonolab pack: error: --out {link} is the label table {table}; choose another output file"),
        (folder, f"sonolab pack: error: --out {folder} is the audio folder {folder}; choose another output file"),
    ]
    for out, message in cases:
        assert main(_argv(folder, table, out)) == 1
        assert capsys.readouterr().err.splitlines() == [message]
    out = tmp_path / "o.h5"
    assert main(_argv(folder, log_named_table, out)) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sonolab pack: error: --out {out} is the label table {log_named_table} (it would write "
        f"{log_named_table}); choose another output file"
    ]
    audio = items[1].path
    wav = open(audio, "rb").read()
    assert main(_argv(folder, table, audio)) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sonolab pack: error: output {audio} is the audio of clip 'c1.wav' ({audio}); choose another output file"
    ]
    assert open(table, "rb").read() == before and open(audio, "rb").read() == wav  # nothing was touched
    with pytest.raises(PackError, match="is a folder"):
        pack(items, str(folder), codec="pcm16", workers=0, progress=False)


@pytest.mark.bad_input
def test_a_folder_the_packer_did_not_write_is_never_deleted(tmp_path):
    items, _ = _clips(tmp_path / "audio", n=2)
    out = str(tmp_path / "o.h5")
    os.makedirs(out + WORK_DIR_SUFFIX)
    with open(os.path.join(out + WORK_DIR_SUFFIX, "notes.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(ValueError, match=r"o\.h5\.parts is not a packer work folder \(it holds 'notes\.txt'\)"):
        pack(items, out, codec="pcm16", workers=0, progress=False)
    assert open(os.path.join(out + WORK_DIR_SUFFIX, "notes.txt")).read() == "mine"


# ---------------------------------------------------------------------------------------------------------------
# One packer per output
# ---------------------------------------------------------------------------------------------------------------
_HOLDER = """
import sys, time
from datamodules.format.parts import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.mark.bad_input
def test_second_packer_of_the_same_output_is_refused(tmp_path, capsys):
    folder = tmp_path / "audio"
    items, table = _clips(folder, n=2)
    out = str(tmp_path / "o.h5")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, out], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(OutputLockedError) as caught:
            pack(items, out, codec="pcm16", workers=0, progress=False)
        assert str(caught.value).startswith(f"{out} is being packed by process {holder.pid} (started 20")
        assert str(caught.value).endswith("; wait for it or stop it")
        assert main(_argv(folder, table, out)) == 1
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"sonolab pack: error: {out} is being packed by process "
                                                   f"{holder.pid} (started ")
        assert not os.path.exists(out) and not os.path.exists(out + WORK_DIR_SUFFIX)
    finally:
        holder.kill()  # SIGKILL: the holder cannot clean up, its lock file stays behind
        holder.wait()
    assert holder.returncode == -signal.SIGKILL and os.path.exists(out + LOCK_SUFFIX)
    assert main(_argv(folder, table, out)) == 0  # a dead holder's lock never blocks
    assert not os.path.exists(out + LOCK_SUFFIX)
    assert len(AudioH5(out)) == 2


# ---------------------------------------------------------------------------------------------------------------
# A full disk
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.bad_input
def test_full_disk_while_writing_work_chunks(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "audio"
    _clips(folder, n=6)
    table = folder / "labels.tsv"
    out = str(tmp_path / "o.h5")
    real = parts.save_arrays
    written = []

    def third_chunk_fills_the_disk(f, arrays):
        if len(written) == 2:
            f.write(b"x" * 100)  # a partial write: its tmp file must not survive
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(f)
        real(f, arrays)

    monkeypatch.setattr(parts, "save_arrays", third_chunk_fills_the_disk)
    assert main(_argv(folder, table, out)) == 1
    err = capsys.readouterr().err
    chunk = f"{out}{WORK_DIR_SUFFIX}/chunk-000002.npz"
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.fullmatch(
        re.escape(f"sonolab pack: error: no space left on the disk writing {chunk} (needs about ")
        + r"3\d\.\d kB, [\d.]+ [kMG]?B free\); "  # 2 clips of 0.5 s at 16 kHz in int16: 32 kB and the names
        + re.escape(f"free some space and run the same command again: the 4 clips finished so far are kept in "
                    f"{out}{WORK_DIR_SUFFIX}\n"), err)
    assert sorted(os.listdir(out + WORK_DIR_SUFFIX)) == ["chunk-000000.npz", "chunk-000001.npz", "manifest.json"]
    assert not os.path.exists(out) and not os.path.exists(out + LOCK_SUFFIX)

    monkeypatch.setattr(parts, "save_arrays", real)
    assert main(_argv(folder, table, out)) == 0
    assert "packed 6 clips (2 encoded now, 4 resumed)" in capsys.readouterr().out
    assert len(AudioH5(out)) == 6 and not os.path.exists(out + WORK_DIR_SUFFIX)


H5PY_ENOSPC = ("Can't synchronously write data (file write failed: time = Mon Jan  1 00:00:00 2024, filename = "
               "'x.h5.tmp', file descriptor = 5, errno = 28, error message = 'No space left on device', buf = "
               "0x55d0, total write size = 8953472, bytes this sub-write = 8953472, offset = 1048576)")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), OSError(H5PY_ENOSPC),
                                   RuntimeError(H5PY_ENOSPC), OSError(errno.EDQUOT, "Disk quota exceeded")],
                         ids=["errno", "h5py-oserror", "h5py-runtimeerror", "quota"])
@pytest.mark.bad_input
def test_full_disk_while_assembling_keeps_the_work(error, tmp_path, monkeypatch):
    items, _ = _clips(tmp_path / "audio", n=3)
    out = str(tmp_path / "o.h5")
    real = pack_module.write_h5

    def disk_fills(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half an HDF5 file")
        raise error

    monkeypatch.setattr(pack_module, "write_h5", disk_fills)
    with pytest.raises(DiskFullError) as caught:
        pack(items, out, codec="pcm16", sample_rate=16000, workers=0, progress=False)
    assert re.fullmatch(
        re.escape(f"no space left on the disk writing {out} (needs about ")
        + r"[45]\d\.\d kB, [\d.]+ [kMG]?B free\); "  # 3 clips of 0.5 s at 16 kHz in int16: 48 kB and the names
        + re.escape(f"free some space and run the same command again: the 3 clips finished so far are kept in "
                    f"{out}{WORK_DIR_SUFFIX}"), str(caught.value))
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp") and os.path.isdir(out + WORK_DIR_SUFFIX)

    monkeypatch.setattr(pack_module, "write_h5", real)
    report = pack(items, out, codec="pcm16", sample_rate=16000, workers=0, progress=False)
    assert (report.reused, report.encoded, report.packed) == (3, 0, 3)


@pytest.mark.bad_input
def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    items, _ = _clips(tmp_path / "audio", n=1)

    def broken(path, *args, **kwargs):
        raise RuntimeError("Unable to create file (unable to lock file, errno = 11)")

    monkeypatch.setattr(pack_module, "write_h5", broken)
    with pytest.raises(RuntimeError, match="unable to lock file"):
        pack(items, str(tmp_path / "o.h5"), codec="pcm16", workers=0, progress=False)


_FULL_DISK = """
set -u
mount -t tmpfs -o size=700k tmpfs "$MNT"
{python} -c 'import sys; from experiments.commands.pack import main; sys.exit(main(sys.argv[1:]))' {args} 2>&1
echo "rc=$?"
ls "$MNT" "$MNT/o.h5.parts"
mount -o remount,size=20m "$MNT"
{python} -c 'import sys; from experiments.commands.pack import main; sys.exit(main(sys.argv[1:]))' {args} 2>&1
echo "rc=$?"
"""


def _can_mount_tmpfs() -> bool:
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d; rc=$?; rmdir $d; exit $rc"
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _can_mount_tmpfs(),
                    reason="needs unshare -rm and tmpfs mounts (user namespaces)")
@pytest.mark.bad_input
def test_a_real_full_disk_gives_one_line_and_the_rerun_resumes(tmp_path):
    """A 700 kB tmpfs holds the work chunks (about 390 kB) but not the final file as well: h5py hits ENOSPC."""
    folder = tmp_path / "audio"
    _clips(folder, n=8, seconds=0.75, rate=32000)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    args = " ".join(_argv(folder, folder / "labels.tsv", mnt / "o.h5", rate=32000))
    script = _FULL_DISK.format(python=sys.executable, args=args)
    run = subprocess.run(["unshare", "-rm", "bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MNT": str(mnt)})
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"sonolab pack: error: no space left on the disk writing {mnt}/o.h5 (needs about ")
    assert lines[1] == "rc=1", run.stdout + run.stderr
    assert "chunk-000003.npz" in lines and "o.h5.tmp" not in lines
    assert lines[-2].startswith(f"{mnt}/o.h5: packed 8 clips (0 encoded now, 8 resumed)") and lines[-1] == "rc=0"


# ---------------------------------------------------------------------------------------------------------------
# Sample rates
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.bad_input
def test_impossible_sample_rates_are_one_clear_line(tmp_path, capsys):
    for rate, message in [(0, "sample rate must be 1..384000 Hz, got 0"),
                          (-16000, "sample rate must be 1..384000 Hz, got -16000"),
                          (400000, "sample rate must be 1..384000 Hz, got 400000"),
                          (16000.5, "sample rate must be a whole number of Hz, got 16000.5"),
                          ("16000", "sample rate must be a whole number of Hz, got '16000'"),
                          (True, "sample rate must be a whole number of Hz, got True")]:
        with pytest.raises(ValueError) as caught:
            pack([PackItem("x.wav", "x.wav")], str(tmp_path / "o.h5"), codec="pcm16", sample_rate=rate)
        assert str(caught.value) == message
    with pytest.raises(ValueError, match=r"^codec mp3 stores only 8000, 11025, .*, 48000 Hz, got 96000"):
        check_sample_rate(96000, "mp3")
    with pytest.raises(ValueError, match=r"^codec ogg stores at most 192000 Hz, got 256000"):
        check_sample_rate(256000, "ogg")
    assert check_sample_rate(np.int64(384000), "flac") == 384000 and not os.path.exists(tmp_path / "o.h5")

    folder = tmp_path / "audio"
    _, table = _clips(folder, n=1)
    for value, message in [("0", "sample rate must be 1..384000 Hz, got 0"),
                           ("16k", "expected a whole number of Hz, got '16k'"),
                           ("44100.0", "expected a whole number of Hz, got '44100.0'")]:
        argv = _argv(folder, table, tmp_path / "o.h5")
        argv[argv.index("--sample-rate") + 1] = value
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"sonolab pack: error: argument --sample-rate: {message}"
    with pytest.raises(SystemExit):
        main(_argv(folder, table, tmp_path / "o.h5", "--codec", "mp3", "--sample-rate", "96000"))
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "sonolab pack: error: argument --sample-rate: codec mp3 stores only 8000, ")
