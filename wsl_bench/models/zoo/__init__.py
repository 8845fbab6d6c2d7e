"""Built-in models; each module registers itself with `register_model`."""
