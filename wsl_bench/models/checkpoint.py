"""Loading weights from local files and from online caches without ever hanging offline.

Local checkpoints are read with `torch.load(weights_only=True)` (no code runs from the file) or
safetensors; the state dict is found inside the usual training-wrapper layouts (`state_dict`,
`model`, `model_state_dict`, `net`, `ema` ...) and their key prefixes (`module.` from
DataParallel/DDP, `model.`, `_orig_mod.` from torch.compile) are removed."""

from __future__ import annotations

import hashlib
import pickle
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import ConfigError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "state_dict_ema", "model_ema", "ema")
PREFIXES = ("module.", "_orig_mod.", "model.", "net.")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file as a flat state dict (wrappers unpacked, prefixes kept)."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.checkpoint={path} not found; give the path of a .pth/.pt/.safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigError(
            f"model.checkpoint={path} holds Python objects other than tensors, which weights_only loading refuses "
            f"({(str(exc).splitlines() or [''])[0][:120]}); re-save it with torch.save(model.state_dict(), path)"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ConfigError(f"model.checkpoint={path} cannot be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})") from None
    for _ in range(4):  # unwrap nested training-wrapper dicts
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict):
        raise ConfigError(f"model.checkpoint={path} is not a state dict (found {type(obj).__name__}); save model.state_dict()")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConfigError(f"model.checkpoint={path} contains no tensors under any of the keys {', '.join(WRAPPER_KEYS)}")
    return tensors


def strip_prefixes(state: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes shared by every key that the model's own names do not have."""
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in model_keys):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def describe_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """Why `state` does not fit a module whose state dict is `own`, naming the keys that differ
    (a shape, missing and unexpected keys, and a num_classes hint); "" when every tensor matches."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or mismatched):
        return ""
    problems = []
    if mismatched:
        k = mismatched[-1]
        problems.append(f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) e.g. {', '.join(unexpected[:3])}")
    hint = ""
    last = mismatched[-1] if mismatched else None
    if last is not None and state[last].ndim >= 1 and state[last].shape[1:] == own[last].shape[1:]:
        hint = f"; set model.num_classes={state[last].shape[0]}"
    return "; ".join(problems) + hint


def file_provenance(path: str | Path) -> str:
    """`checkpoint <absolute path> (sha256 <first 12 hex digits>)` for the run's provenance."""
    path = Path(str(path)).expanduser()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"checkpoint {path.resolve()} (sha256 {digest})"


def load_checkpoint(module: nn.Module, path: str | Path) -> str:
    """Load a local checkpoint into `module` exactly (every tensor matched, shapes equal).
    Returns a provenance string with the file's sha256 prefix."""
    own = module.state_dict()
    state = strip_prefixes(read_checkpoint(path), set(own))
    problems = describe_mismatch(own, state)
    if problems:
        raise ConfigError(f"model.checkpoint={path} does not fit the architecture: {problems}")
    module.load_state_dict(state, strict=True)
    return file_provenance(path)


def host_reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether the host of `url` resolves and accepts a TCP connection within `timeout` seconds.
    Name resolution runs in a daemon thread because getaddrinfo ignores socket timeouts."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


def offline_message(model: str, weights: str, url: str, cached: Path, reason: str) -> str:
    return (
        f"model {model}: weights {weights} are not in the local cache ({cached}) and {reason}; "
        f"on a machine with internet download {url} and copy it to {cached}, "
        f"or pass a local file with model.checkpoint=/path/to/weights.pth"
    )


def download_allowed(cfg: Any) -> bool:
    return bool(cfg.get("download", True))


def with_timeout(fn, *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
    """Run a download with a socket timeout, so a stalled connection fails instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return fn(*args, **kwargs)
    finally:
        socket.setdefaulttimeout(previous)
