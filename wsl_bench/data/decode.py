"""Decoding image files into [3, H, W] uint8 RGB tensors, with each repair named.

EXIF orientation (`dataset.exif_orientation`): `follow` (default) shows the image as viewers and
annotation tools do (the stored pixels rotated / mirrored by the orientation tag), and the note
says so; `ignore` reads the stored pixels as they are.

Large images (`dataset.max_pixels`): an image with more pixels is decoded reduced by a power of
two (JPEG: in the DCT, PIL `draft`, so the full image never exists in memory; other formats:
decoded, then box-reduced) until it fits. The reduced pixels only feed the network: `size` stays
the original (oriented) image's, and the ground truth and every score stay on that grid
(DecodedImages maps the input's view back onto it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageFile

from ..errors import ConfigError

# Fail on truncated files instead of silently decoding grey padding.
ImageFile.LOAD_TRUNCATED_IMAGES = False

MIN_SIDE = 8  # smaller images cannot give a meaningful CAM
EXIF_ORIENTATION_TAG = 0x0112
EXIF_CHOICES = ("follow", "ignore")
DEFAULT_MAX_PIXELS = 4096 * 4096
# What each EXIF orientation value does to the stored pixels for display (the TIFF/EXIF table,
# as PIL.ImageOps.exif_transpose applies it).
ORIENTATIONS = {
    2: "mirrored left-right", 3: "rotated 180 degrees", 4: "mirrored top-bottom", 5: "transposed",
    6: "rotated 90 degrees clockwise", 7: "transversed", 8: "rotated 90 degrees counter-clockwise",
}


class ImageDecodeError(Exception):
    """The file cannot give a usable image; the message is the skip reason."""


@dataclass(frozen=True)
class DecodeOptions:
    """How files are read: `exif_orientation` follow | ignore; `max_pixels` above which an image
    is decoded reduced (None: never)."""

    exif_orientation: str = "follow"
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    @staticmethod
    def from_config(cfg: Any) -> "DecodeOptions":
        """From the dataset config node (`dataset.exif_orientation`, `dataset.max_pixels`)."""
        exif = cfg.get("exif_orientation", "follow")
        if exif not in EXIF_CHOICES:
            raise ConfigError(f"dataset.exif_orientation={exif!r} is not supported; use follow or ignore")
        max_pixels = cfg.get("max_pixels", DEFAULT_MAX_PIXELS)
        if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < MIN_SIDE**2):
            raise ConfigError(f"dataset.max_pixels={max_pixels!r} must be an integer >= {MIN_SIDE**2} or null (never reduce)")
        return DecodeOptions(exif, max_pixels)


class Decoded(NamedTuple):
    """rgb: [3, h, w] uint8 (h, w smaller than `size` when decoded reduced); note: the repairs
    made ("" if none); size: (height, width) of the image as oriented, at full resolution."""

    rgb: torch.Tensor
    note: str
    size: tuple[int, int]


def reduction_factor(height: int, width: int, max_pixels: int | None) -> int:
    """The smallest power of two k with ceil(h / k) * ceil(w / k) <= max_pixels (1 when it fits),
    never making a side shorter than MIN_SIDE."""
    k = 1
    while max_pixels is not None and math.ceil(height / k) * math.ceil(width / k) > max_pixels:
        if min(math.ceil(height / (2 * k)), math.ceil(width / (2 * k))) < MIN_SIDE:
            break
        k *= 2
    return k


def orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """[H, W, C] stored pixels -> as displayed for EXIF orientation 1..8."""
    if orientation in (5, 6, 7, 8):
        rgb = {5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
               7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}[orientation](rgb)
    elif orientation in (2, 3, 4):
        rgb = {2: rgb[:, ::-1], 3: rgb[::-1, ::-1], 4: rgb[::-1]}[orientation]
    return rgb


def _orientation(img: Image.Image) -> tuple[int, str]:
    """The EXIF orientation (1 when absent) and a note on an invalid one."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception as exc:  # noqa: BLE001 - a corrupt EXIF block must not lose a readable image
        return 1, f"ignored an unreadable EXIF block ({type(exc).__name__})"
    if isinstance(value, int) and 1 <= value <= 8:
        return value, ""
    return 1, f"ignored the invalid EXIF orientation {str(value)[:20]!r}"


def _to_rgb(img: Image.Image) -> tuple[np.ndarray, str]:
    """[H, W, 3] uint8 and the conversion note (grayscale, CMYK, alpha, 16-bit)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale the full 16-bit range down to 8 bits.
        arr = np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), f"converted {mode} to RGB"
    if mode == "RGB":
        return np.asarray(img), ""
    dropped = " (alpha dropped)" if "A" in mode or "transparency" in img.info else ""
    return np.asarray(img.convert("RGB")), f"converted {mode} to RGB{dropped}"


def decode_rgb(path: Path, options: DecodeOptions = DecodeOptions()) -> Decoded:
    """Read an image file as RGB uint8 [3, h, w] (see the module docstring for orientation and
    reduced decoding); every repair is named in the note."""
    path = Path(path)
    notes = []
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError("zero-byte file")
        with warnings.catch_warnings():
            # memory is bounded by max_pixels below; PIL's hard bomb limit still applies
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            orientation, note = _orientation(img) if options.exif_orientation == "follow" else (1, "")
            notes.append(note)
            width, height = img.size
            factor = reduction_factor(height, width, options.max_pixels)
            if factor > 1 and img.format == "JPEG":  # libjpeg scales by 1/2, 1/4 or 1/8 while decoding
                img.draft(None, (max(1, width // min(factor, 8)), max(1, height // min(factor, 8))))
            img.load()
            rgb, note = _to_rgb(img)
            notes.append(note)
            rest = round(rgb.shape[1] / math.ceil(width / factor))
            if rest > 1:  # what the draft could not reduce (or any other format): box-reduce the rest
                rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(rest))
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"file not found: {path.name}") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds on corrupt files; one must not end a run
        raise ImageDecodeError(f"unreadable image ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})") from None
    if rgb.ndim != 3 or min(height, width) < MIN_SIDE:
        raise ImageDecodeError(f"image too small ({width}x{height} px, need >= {MIN_SIDE})")
    if orientation != 1:
        rgb = orient(rgb, orientation)
        notes.append(f"applied EXIF orientation {orientation} ({ORIENTATIONS[orientation]})")
        if orientation >= 5:
            height, width = width, height
    if factor > 1:
        notes.append(
            f"decoded at 1/{factor} scale ({rgb.shape[1]}x{rgb.shape[0]} of {width}x{height} px, over "
            f"dataset.max_pixels={options.max_pixels}); ground truth and scores stay on the {width}x{height} grid"
        )
    tensor = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).contiguous()
    return Decoded(tensor, "; ".join(n for n in notes if n), (height, width))
