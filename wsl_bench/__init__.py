"""wsl_bench: score class activation maps as weakly-supervised localizers.

Stages, each a subpackage, data flowing one way:
data -> models -> methods (maps) -> metrics -> records -> report.
"""

from .methods import Explainer, explain, register_method
from .models import create_model, register_model
from .data import build_dataset, register_dataset

__version__ = "0.1.0"
__all__ = ["Explainer", "build_dataset", "create_model", "explain", "register_dataset", "register_method", "register_model"]
