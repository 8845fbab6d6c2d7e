"""Stage 2, models: classifiers by name with their normalization and default target layer."""

from .base import LoadedModel, create_model, register_model, resolve_layer

__all__ = ["LoadedModel", "create_model", "register_model", "resolve_layer"]
