"""Model catalogue: architectures, frontends, complexity.

Importing this package registers every catalogue name. Use :func:`create_model`, :func:`create_frontend`,
:func:`list_models`.
"""
from models.registry import (  # noqa: F401
    ModelEntry,
    create_frontend,
    create_model,
    get_entry,
    list_frontends,
    list_models,
    read_state_dict,
    register_frontend,
    register_model,
)

# Modules whose import registers catalogue entries (order is irrelevant).
from models import frontends  # noqa: F401,E402
from models import demo_cnn  # noqa: F401,E402
from models import efficientat  # noqa: F401,E402
from models import cpmobile  # noqa: F401,E402
from models import sed  # noqa: F401,E402
from models import transformers  # noqa: F401,E402
