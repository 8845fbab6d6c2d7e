"""timm models by name (`model.source=timm model.name=resnet50.a1_in1k`), an optional extra:
pretrained weights from the Hugging Face cache (downloaded only when `model.download` is true and
huggingface.co answers), or a local checkpoint (`model.checkpoint=...`)."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ..base import LoadedModel, register_model
from ..checkpoint import download_allowed, host_reachable, load_checkpoint, with_timeout
from ..layers import default_target_layer

HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def _cached_hf_file(repo: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in HF_FILES:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return found
    return None


@register_model("timm")
def build_timm(cfg: Any) -> LoadedModel:
    try:
        import timm
    except ImportError:
        raise ConfigError("model.source=timm needs timm: pip install timm") from None
    name = str(cfg.name)
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0]}*")[:12]
        raise ConfigError(f"model.name={name!r} is not a timm model; e.g. {', '.join(close) or 'resnet50.a1_in1k'}")
    num_classes = cfg.get("num_classes")
    extra = {"num_classes": num_classes} if num_classes else {}
    checkpoint = cfg.get("checkpoint")
    if checkpoint:
        module = timm.create_model(name, pretrained=False, **extra)
        provenance = load_checkpoint(module, checkpoint)
    else:
        probe = timm.create_model(name, pretrained=False, **extra)
        pcfg = probe.pretrained_cfg
        repo, url = pcfg.get("hf_hub_id"), pcfg.get("url")
        where = f"https://huggingface.co/{repo}" if repo else url
        if not where:
            raise ConfigError(f"model {name}: timm has no pretrained weights for it; pass model.checkpoint=/path/to/weights.pth")
        cached = _cached_hf_file(repo) if repo else None
        if cached:
            module = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **extra)
        else:
            reason = "model.download=false" if not download_allowed(cfg) else (
                None if host_reachable(where) else f"{where.split('/')[2]} cannot be reached"
            )
            if reason:
                fetch = f"run `huggingface-cli download {repo}` and copy the Hugging Face cache (HF_HOME)" if repo else f"download {where} into torch's hub cache"
                raise ConfigError(
                    f"model {name}: pretrained weights are not in the local cache and {reason}; on a machine with internet "
                    f"{fetch} to this machine, or pass a local file with model.checkpoint=/path/to/weights.pth"
                )
            module = with_timeout(timm.create_model, name, pretrained=True, **extra)
        provenance = f"timm {name} ({where})"
    pcfg = module.pretrained_cfg
    return LoadedModel(
        module=module,
        name=name,
        target_layer=default_target_layer(module, name),
        mean=tuple(cfg.mean) if cfg.get("mean") else tuple(pcfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.std) if cfg.get("std") else tuple(pcfg.get("std", (0.229, 0.224, 0.225))),
        num_classes=module.num_classes,
        multilabel=bool(cfg.get("multilabel", False)),
        weights=provenance,
    )
