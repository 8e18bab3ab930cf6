"""Decoding image files: RGB uint8 (3, H, W), optionally resized and centre-cropped, with a pixel limit read from
the header before any pixel is decoded. Used by ``image_folder``, image shards, ``embed`` and evaluation."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Optional

import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")

MAX_PIXELS = 50_000_000
"""Default pixel limit of an image file (width × height, read from its header before decoding): 50 MP is
150 MB of RGB; a 30000 × 30000 PNG of under 1 MB would otherwise take gigabytes each time it is read."""


def header_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the file header without decoding the pixels (None when Pillow cannot tell)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.size
        except Image.DecompressionBombError as e:  # above Pillow's own limit (179 MP), which caps max_pixels
            raise ValueError(f"image too large to decode ({e})") from None
        except Exception:  # noqa: BLE001 - a format Pillow does not parse: the decoder decides
            return None


def decode_image(path: Path, size: Optional[int], max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Read an image file as RGB uint8 (3, H, W); with ``size``, resize the shorter side to ``size``
    (antialiased bilinear) and centre-crop size × size. Images above ``max_pixels`` are refused before
    decoding; 16-bit images are scaled to 8 bits. Raises on unreadable files."""
    return decode_image_bytes(path.read_bytes(), size, max_pixels)


def decode_image_bytes(data: bytes, size: Optional[int], max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """:func:`decode_image` of an encoded image held in memory (e.g. a WebDataset sample)."""
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode
    from torchvision.transforms.v2 import functional as TF

    if not data:
        raise ValueError("empty file")
    dims = header_size(data)
    if dims is not None and dims[0] * dims[1] > max_pixels:
        raise ValueError(
            f"image is {dims[0]} x {dims[1]} = {dims[0] * dims[1]:,} pixels, above the dataset's "
            f"max_pixels {max_pixels:,} (raise it if such images are intended)"
        )
    with warnings.catch_warnings():  # torchvision >= 0.29 flags its decoders as deprecated (-> torchcodec)
        warnings.simplefilter("ignore", DeprecationWarning)
        img = tv_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    if img.dtype != torch.uint8:  # 16-bit PNG
        img = TF.to_dtype(img, torch.uint8, scale=True)
    if size is not None and tuple(img.shape[-2:]) != (size, size):
        img = TF.resize(img, [size], antialias=True)
        img = TF.center_crop(img, [size, size])
    return img.contiguous()
