"""Images in: data-URI decoding (the only way an image arrives) and CLIP-style preprocessing."""

from __future__ import annotations

import base64
import binascii
import io
import re

import torch
from PIL import Image


def preprocess_images(images: list[Image.Image], size: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """CLIP-style: RGB, shortest side to ``size`` (bicubic), centre crop, normalise -> ``[B, 3, size, size]``."""
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)
    batch = []
    for image in images:
        rgb = _resize_center_crop(image.convert("RGB"), size)
        data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        pixels = data.view(size, size, 3).permute(2, 0, 1).float() / 255.0
        batch.append((pixels - mean_t) / std_t)
    return torch.stack(batch)


def _resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode_data_uri(uri: str, max_bytes: int = 10 * 1024 * 1024, max_pixels: int = 4096 * 4096) -> Image.Image:
    """An image from ``data:image/...;base64,...``; anything else (including URLs) is refused."""
    match = re.fullmatch(r"data:image/[A-Za-z0-9.+-]+;base64,([A-Za-z0-9+/=\s]*)", uri)
    if match is None:
        raise ValueError("이미지는 data:image/...;base64 형식이어야 합니다 (image must be a base64 data URI)")
    if len(match.group(1)) * 3 // 4 > max_bytes:
        raise ValueError(f"이미지가 너무 큽니다 (image larger than {max_bytes} bytes)")
    try:
        raw = base64.b64decode(match.group(1), validate=False)
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > max_pixels:
            raise ValueError(f"이미지 픽셀 수가 너무 많습니다 (more than {max_pixels} pixels)")
        image.load()
    except (binascii.Error, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"이미지를 읽을 수 없습니다 (cannot decode image: {exc})") from None
    return image


def encode_data_uri(image: Image.Image) -> str:
    """PNG data URI of an image (for prompts written by tests, eval and the demo)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
