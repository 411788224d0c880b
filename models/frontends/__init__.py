"""Frontends: waveform (B, n) -> spectrogram (B, 1, F, T). Importing registers ``efficientat_mel``, ``mel`` and the
transformer frontends ``beats_fbank``, ``asit_fbank``, ``atst_mel``, ``fpasst_mel``, ``passt_mel``."""
from models.frontends.atst_mel import ATSTMel  # noqa: F401
from models.frontends.efficientat_mel import EfficientATMel, kaldi_mel_banks  # noqa: F401
from models.frontends.kaldi_fbank import FrontendInputError, KaldiFbank, kaldi_window  # noqa: F401
from models.frontends.masking import SpecMasking  # noqa: F401
from models.frontends.mel import MelSpectrogram, mel_filterbank  # noqa: F401
from models.registry import register_frontend

register_frontend("efficientat_mel", EfficientATMel)
register_frontend("mel", MelSpectrogram)
# BEATs: torchaudio kaldi.fbank defaults (povey window) on the waveform in int16 range; (x - 15.41663) / (2 * 6.55582)
register_frontend("beats_fbank", KaldiFbank, window="povey", waveform_scale=32768.0, norm_mean=15.41663,
                  norm_std=2 * 6.55582)
# ASiT: clip mean removed, Hanning window; (x + 4.2677393) / (2 * 4.5689974)
register_frontend("asit_fbank", KaldiFbank, window="hanning", subtract_mean=True, norm_mean=-4.2677393,
                  norm_std=2 * 4.5689974)
register_frontend("atst_mel", ATSTMel)
# fPaSST (PretrainedSED / cpjku_dcase24): eval fmax 8000 - 2000 / 2 = 7000 Hz, periodic window, log(max(x, 1e-7))
register_frontend("fpasst_mel", EfficientATMel, sample_rate=16000, win_length=400, hop_size=160, n_fft=512,
                  n_mels=128, fmin_aug_range=10, fmax_aug_range=2000, periodic_window=True, log_floor=1e-7)
# PaSST-S (kkoutini/PaSST): the EfficientAT mel at 32 kHz, eval fmax 15000 Hz, symmetric window, log(x + 1e-5)
register_frontend("passt_mel", EfficientATMel, sample_rate=32000, win_length=800, hop_size=320, n_fft=1024,
                  n_mels=128, fmin_aug_range=10, fmax_aug_range=2000, periodic_window=False, log_floor=None)
