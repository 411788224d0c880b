"""EfficientAT MobileNets (MN) and dynamic MobileNets (DyMN).

Importing this package registers every published name (``mn10_as``, ``dymn10_as``, ``mn10_as_hop_15``, ...);
see :mod:`models.efficientat.catalogue`. Embedding recipes live in :mod:`models.efficientat.embeddings`.
"""
from models.efficientat.dymn import DyMN  # noqa: F401
from models.efficientat.dynamic import (  # noqa: F401
    ContextGenerator,
    DynamicConv,
    DyReLUB,
    set_temperature,
    temperature_schedule,
)
from models.efficientat.layers import make_divisible  # noqa: F401
from models.efficientat.mn import MN  # noqa: F401
from models.efficientat import catalogue  # noqa: F401,E402  (registers the names)
