"""Sound event detection networks. Importing registers ``crnn_dcase24`` and ``crnn_dcase24_beats``."""
from models.sed.cnn import CNN, GLU  # noqa: F401
from models.sed.crnn import (  # noqa: F401
    DCASE24_SED_MEL,
    CRNN,
    BiGRU,
    attention_pool,
    desed_state_dict,
    drop_time_steps,
)
