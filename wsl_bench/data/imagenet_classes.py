"""ImageNet-1k classes in the standard order (sorted wnids), as torchvision's weights use."""

from functools import lru_cache

from torchvision.models import ResNet50_Weights

IMAGENET_CLASSES: tuple[str, ...] = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 wnids, sorted: position = class index (list shipped with timm)."""
    from timm.data import ImageNetInfo

    wnids = tuple(ImageNetInfo().label_names())
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    return wnids
