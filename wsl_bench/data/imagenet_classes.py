"""ImageNet-1k class names in the standard order (sorted wnids), as torchvision's weights use."""

from torchvision.models import ResNet50_Weights

IMAGENET_CLASSES: tuple[str, ...] = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
