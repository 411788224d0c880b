"""Sound event detection data: class lists and the event <-> frame label encoder."""
from datamodules.sed.label_encoder import (
    DESED_CLASSES,
    MAESTRO_EVAL_CLASSES,
    MAESTRO_REAL_CLASSES,
    EventLabelEncoder,
    active_runs,
)

__all__ = [
    "DESED_CLASSES",
    "MAESTRO_EVAL_CLASSES",
    "MAESTRO_REAL_CLASSES",
    "EventLabelEncoder",
    "active_runs",
]
