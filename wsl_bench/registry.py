"""Name -> object registries shared by datasets, models, methods and metrics (timm-style `create_*`)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def _definition(entry: Any) -> tuple[str, str]:
    """Where an entry was defined (module, qualified name): the same definition registered again
    (a module imported twice, a yaml `_target_` read per run) is not a collision."""
    obj = getattr(entry, "fn", entry)
    return getattr(obj, "__module__", ""), getattr(obj, "__qualname__", repr(obj))


class Registry(Generic[T]):
    """Entries registered by decorator. Built-ins are every module of `package`, imported before
    the first lookup or the first registration from outside it, so a user's entry can never be
    silently replaced by (or silently replace) a built-in: a second definition under a taken
    name is a ConfigError unless registered with replace=True."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        if not _definition(entry)[0].startswith(self.package + "."):
            self._load_builtins()  # an outside entry meets every built-in name
        old = self._entries.get(name)
        if old is not None and not replace and _definition(old) != _definition(entry):
            module, qualname = _definition(old)
            raise ConfigError(
                f"{self.kind} {name!r} is already registered ({module}.{qualname}); register yours under another "
                f"name, or with replace=True to replace it deliberately"
            )
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        return lambda entry: self.register(name, entry)

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: the built-ins' own registrations come back here
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str) -> T:
        entry = self.get_or_none(name)
        if entry is None:
            raise ConfigError(f"{self.kind} {name!r} is unknown; available: {', '.join(self.names())}")
        return entry

    def get_or_none(self, name: str) -> T | None:
        self._load_builtins()
        return self._entries.get(name)

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)


def user_target(node: Any, kind: str, name: str) -> Any:
    """What a method or metric yaml brings from outside the package: imports its `module:` (so a
    decorator in it registers), and returns the object its `_target_: pkg.module.attr` names (None
    without one)."""
    if node.get("module"):
        import_user_module(str(node["module"]), kind)
    target = node.get("_target_")
    if not target:
        return None
    module_name, _, attr = str(target).rpartition(".")
    if not module_name:
        raise ConfigError(f"{kind} {name}: _target_ {target!r} must be 'module.attribute'")
    import_user_module(module_name, kind)
    found = getattr(sys.modules[module_name], attr, None)
    if found is None:
        raise ConfigError(f"{kind} {name}: {target!r} not found; fix the {kind} yaml's _target_")
    return found


def import_user_module(module: str, kind: str) -> None:
    """Import a module named in a method or metric yaml (`module:` / `_target_:`): a dotted module
    name on sys.path, or a path to a .py file."""
    if module.endswith(".py"):
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{kind} module file {path} not found; fix the {kind} yaml's module:")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{kind} module {module!r} cannot be imported ({exc}); put it on PYTHONPATH or give a .py path") from None
