"""Stage 3, methods: saliency maps from one shared forward/backward."""

from .core import METHODS, Explainer, MethodSpec, Pass, explain, method_from_config, register_method

__all__ = ["METHODS", "Explainer", "MethodSpec", "Pass", "explain", "method_from_config", "register_method"]
