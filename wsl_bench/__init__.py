"""wsl_bench: score class activation maps as weakly-supervised localizers.

Stages, each a subpackage, data flowing one way:
data -> models -> methods (maps) -> metrics -> records -> report.
"""

from .config import register_config_schemas
from .data import build_dataset, register_dataset
from .methods import Explainer, explain, register_method
from .metrics import register_metric
from .models import create_model, register_model

# Hydra composes conf/ on top of the schemas' defaults (wsl_bench.config): available on import.
register_config_schemas()

__version__ = "0.1.0"
__all__ = [
    "Explainer", "build_dataset", "create_model", "explain", "register_dataset", "register_method", "register_metric", "register_model",
]
