"""Uploaded images: sniffed and checked (type, bytes, pixels), stored per owner, sent as data URIs.

The file name and the client's content type are never trusted: Pillow reads the bytes and must
find PNG, JPEG or WebP. The pixel limit is checked from the header before any decoding, so a
decompression bomb is refused without being expanded. Decoding runs in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import warnings
from dataclasses import dataclass

from bson import Binary, ObjectId
from PIL import Image, UnidentifiedImageError

from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import images as images_repo
from backend.db.client import Db
from backend.db.ids import parse_id
from backend.db.models import ImageDoc

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MODEL_SIDE = 768  # the align model sees 224-336 px; a smaller copy keeps requests light


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    width: int
    height: int


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    if len(data) > max_bytes:
        raise AppError("image_too_large")
    if not data:
        raise AppError("image_invalid")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                if fmt not in FORMATS:
                    raise AppError("image_unsupported")
                width, height = image.size
                if width * height > max_pixels:
                    raise AppError("image_too_many_pixels")
                image.load()  # a truncated or corrupt file fails here
        except AppError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise AppError("image_too_many_pixels") from None
        except UnidentifiedImageError:
            raise AppError("image_unsupported") from None
        except (OSError, ValueError, SyntaxError):
            raise AppError("image_invalid") from None
    return CheckedImage(FORMATS[fmt], width, height)


async def save_image(*, db: Db, user_id: ObjectId, data: bytes, max_bytes: int, max_pixels: int,
                     quota_bytes: int | None = None, retention_s: int | None = None) -> ImageDoc:
    """Check and store an upload. With `quota_bytes`, the user's stored images plus this one must
    fit (413 quota_exceeded, saying how much is used); with `retention_s`, the image is deleted
    that long after upload unless it is sent in a message first."""
    checked = await asyncio.to_thread(check_image, data, max_bytes=max_bytes, max_pixels=max_pixels)
    now = utcnow()
    if quota_bytes is not None:
        await images_repo.delete_expired(db=db, user_id=user_id, now=now)
        used = await images_repo.stored_bytes(db=db, user_id=user_id)
        if used + len(data) > quota_bytes:
            raise AppError("quota_exceeded", f"{used} + {len(data)} > {quota_bytes}",
                           params={"used": _mib(used), "quota": _mib(quota_bytes)})
    doc = ImageDoc(
        _id=ObjectId(), user_id=user_id, conversation_id=None, content_type=checked.content_type,
        size=len(data), width=checked.width, height=checked.height,
        sha256=hashlib.sha256(data).hexdigest(), data=Binary(data), created_at=now,
    )
    if retention_s is not None:
        doc["expires_at"] = now + dt.timedelta(seconds=retention_s)
    await images_repo.insert_image(db=db, doc=doc)
    return doc


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


async def get_image(*, db: Db, user_id: ObjectId, image_id: str) -> ImageDoc:
    oid = parse_id(image_id)
    doc = None if oid is None else await images_repo.get_image(db=db, user_id=user_id, image_id=oid)
    if doc is None:
        raise AppError("image_not_found")
    return doc


async def owned_images(*, db: Db, user_id: ObjectId, image_ids: list[ObjectId]) -> list[ImageDoc]:
    """The images in the given order; any id that is not the user's → image_not_found."""
    if not image_ids:
        return []
    by_id = {doc["_id"]: doc for doc in await images_repo.find_images(db=db, user_id=user_id, image_ids=image_ids)}
    if len(by_id) != len(set(image_ids)):
        raise AppError("image_not_found")
    return [by_id[i] for i in image_ids]


def model_data_uri(data: bytes) -> str:
    """A reduced copy for the model as a data URI (TGI markdown image syntax takes these)."""
    with Image.open(io.BytesIO(data)) as original:
        image = original.convert("RGB")
    image.thumbnail((MODEL_SIDE, MODEL_SIDE))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


async def model_data_uris(docs: list[ImageDoc]) -> list[str]:
    return [await asyncio.to_thread(model_data_uri, bytes(doc["data"])) for doc in docs]


def decode_data_uri(uri: str, *, max_bytes: int) -> bytes:
    """Bytes of a base64 data: URI (OpenAI-style image_url); never fetches a URL."""
    if not uri.startswith("data:"):
        raise AppError("image_url_not_allowed")
    header, sep, payload = uri.partition(",")
    if not sep or ";base64" not in header:
        raise AppError("image_invalid")
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise AppError("image_too_large")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise AppError("image_invalid") from None
