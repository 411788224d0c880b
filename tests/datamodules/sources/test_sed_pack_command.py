"""`sonolab sed-pack` over DESED and MAESTRO roots."""
import os

import pytest

from datamodules.format.hdf5 import AudioH5
from experiments.commands import sed_pack


@pytest.mark.bad_input
def test_cli_both_roots(desed_root, maestro_root, tmp_path, capsys):
    from experiments.cli import main as sonolab

    out = tmp_path / "out"
    code = sonolab(["sed-pack", "--desed-root", desed_root, "--maestro-root", maestro_root, "--out-dir", str(out),
                    "--sets", "weak", "maestro_devtest", "--codec", "flac", "--workers", "0", "--no-progress"])
    assert code == 0
    assert sorted(os.listdir(out)) == ["desed_weak.h5", "maestro_real_devtest.h5"]
    assert "harbour_01" in capsys.readouterr().err  # the unlisted recording is reported and ignored
    assert AudioH5(str(out / "maestro_real_devtest.h5")).codec == "flac"
    assert sed_pack.main(["--out-dir", str(out)]) == 1
    assert sed_pack.main(["--desed-root", desed_root, "--out-dir", str(out), "--sets", "maestro_val"]) == 1
    assert "needs --maestro-root" in capsys.readouterr().err
