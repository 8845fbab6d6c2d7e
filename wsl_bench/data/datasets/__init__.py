"""Built-in datasets; each module registers itself with `register_dataset`."""
