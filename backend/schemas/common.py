"""Pieces shared by the schemas: id conversion and the error body (for the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pydantic import BaseModel


def public_value(value: Any) -> Any:
    """ObjectIds (also inside lists and dicts) become strings for JSON output."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, list):
        return [public_value(v) for v in value]
    if isinstance(value, dict):
        return {k: public_value(v) for k, v in value.items()}
    return value


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: document the shared error shape for these statuses."""
    return {status: {"model": ErrorResponse} for status in statuses}
