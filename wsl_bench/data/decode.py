"""Decoding image files into [3, H, W] uint8 RGB tensors, with each repair named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

# Fail on truncated files instead of silently decoding grey padding.
ImageFile.LOAD_TRUNCATED_IMAGES = False

MIN_SIDE = 8  # smaller images cannot give a meaningful CAM


class ImageDecodeError(Exception):
    """The file cannot give a usable image; the message is the skip reason."""


def decode_rgb(path: Path) -> tuple[torch.Tensor, str]:
    """Read an image file as RGB uint8 [3, H, W]. Returns the tensor and a note on any repair
    (grayscale, CMYK, alpha or 16-bit inputs are converted, and the note says so)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError("zero-byte file")
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            note = ""
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: scale the full 16-bit range down to 8 bits.
                arr = np.asarray(img, dtype=np.float64)
                arr = np.clip(arr / 257.0, 0, 255).astype(np.uint8)
                rgb = np.repeat(arr[..., None], 3, axis=2)
                note = f"converted {mode} to RGB"
            else:
                if mode != "RGB":
                    dropped = " (alpha dropped)" if "A" in mode or "transparency" in img.info else ""
                    note = f"converted {mode} to RGB{dropped}"
                rgb = np.asarray(img.convert("RGB"))
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"file not found: {path.name}") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds on corrupt files; one must not end a run
        raise ImageDecodeError(f"unreadable image ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < MIN_SIDE:
        raise ImageDecodeError(f"image too small ({rgb.shape[1]}x{rgb.shape[0]} px, need >= {MIN_SIDE})")
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).contiguous(), note
