"""Uploaded images: sniffed and checked (type, bytes, pixels), stored per owner, sent as data URIs.

The file name and the client's content type are never trusted: Pillow reads the bytes and must
find PNG, JPEG or WebP. The pixel limit is checked from the header before any decoding, so a
decompression bomb is refused without being expanded. Decoding runs in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

from bson import Binary, ObjectId
from PIL import Image, UnidentifiedImageError

from backend.chat.errors import ChatError
from backend.core.clock import utcnow
from backend.db.client import Db

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MODEL_SIDE = 768  # the align model sees 224-336 px; a smaller copy keeps requests light


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    width: int
    height: int


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    if len(data) > max_bytes:
        raise ChatError("image_too_large", 413)
    if not data:
        raise ChatError("image_invalid", 422)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                if fmt not in FORMATS:
                    raise ChatError("image_unsupported", 415)
                width, height = image.size
                if width * height > max_pixels:
                    raise ChatError("image_too_many_pixels", 413)
                image.load()  # a truncated or corrupt file fails here
        except ChatError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ChatError("image_too_many_pixels", 413) from None
        except UnidentifiedImageError:
            raise ChatError("image_unsupported", 415) from None
        except (OSError, ValueError, SyntaxError):
            raise ChatError("image_invalid", 422) from None
    return CheckedImage(FORMATS[fmt], width, height)


async def save_image(*, db: Db, user_id: ObjectId, data: bytes, max_bytes: int, max_pixels: int) -> dict[str, Any]:
    checked = await asyncio.to_thread(check_image, data, max_bytes=max_bytes, max_pixels=max_pixels)
    doc: dict[str, Any] = {
        "user_id": user_id, "conversation_id": None, "content_type": checked.content_type,
        "size": len(data), "width": checked.width, "height": checked.height,
        "sha256": hashlib.sha256(data).hexdigest(), "data": Binary(data), "created_at": utcnow(),
    }
    doc["_id"] = (await db.images.insert_one(doc)).inserted_id
    return doc


async def get_image(*, db: Db, user_id: ObjectId, image_id: ObjectId) -> dict[str, Any] | None:
    return await db.images.find_one({"_id": image_id, "user_id": user_id})


async def owned_images(*, db: Db, user_id: ObjectId, image_ids: list[ObjectId]) -> list[dict[str, Any]]:
    """The images in the given order; any id that is not the user's → image_not_found."""
    docs = await db.images.find({"_id": {"$in": image_ids}, "user_id": user_id}).to_list(length=len(image_ids))
    by_id = {doc["_id"]: doc for doc in docs}
    if len(by_id) != len(set(image_ids)):
        raise ChatError("image_not_found", 404)
    return [by_id[i] for i in image_ids]


async def attach_images(*, db: Db, user_id: ObjectId, image_ids: list[ObjectId], conversation_id: ObjectId) -> None:
    """Images join the conversation they were sent in, so deleting it deletes them."""
    if image_ids:
        await db.images.update_many(
            {"_id": {"$in": image_ids}, "user_id": user_id}, {"$set": {"conversation_id": conversation_id}}
        )


def model_data_uri(data: bytes) -> str:
    """A reduced copy for the model as a data URI (TGI markdown image syntax takes these)."""
    with Image.open(io.BytesIO(data)) as original:
        image = original.convert("RGB")
    image.thumbnail((MODEL_SIDE, MODEL_SIDE))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


async def model_data_uris(docs: list[dict[str, Any]]) -> list[str]:
    return [await asyncio.to_thread(model_data_uri, bytes(doc["data"])) for doc in docs]


def decode_data_uri(uri: str, *, max_bytes: int) -> bytes:
    """Bytes of a base64 data: URI (OpenAI-style image_url); never fetches a URL."""
    if not uri.startswith("data:"):
        raise ChatError("image_unsupported", 422, "only data: URIs are accepted")
    header, sep, payload = uri.partition(",")
    if not sep or ";base64" not in header:
        raise ChatError("image_invalid", 422)
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise ChatError("image_too_large", 413)
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise ChatError("image_invalid", 422) from None
