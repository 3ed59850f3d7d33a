"""/api/v1/admin/export-feedback: the training data of `kovr export-feedback`, as a zip download.
Admins only; everyone else gets 404 (the route does not show that it exists)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response

from backend.http.deps import AdminAuth, DbDep
from backend.schemas.common import error_responses
from backend.services import feedback_export

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/export-feedback", response_class=Response,
            responses={200: {"content": {"application/zip": {}},
                             "description": "sft.jsonl, preference.jsonl and data_summary.json"},
                       **error_responses(404, 422)})
async def export_feedback(
    _admin: AdminAuth, db: DbDep,
    since: Annotated[dt.date | None, Query(description="only answers from this day on (UTC)")] = None,
    min_rating: Annotated[int, Query(ge=-1, le=1, description="SFT keeps answers rated at least this")] = 1,
) -> Response:
    """Consenting users' rated answers as SFT records and preference pairs (PII masked, NFC)."""
    start = None if since is None else dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
    export = await feedback_export.build_export(db, feedback_export.ExportOptions(since=start, min_rating=min_rating))
    return Response(feedback_export.zip_export(export), media_type="application/zip", headers={
        "Content-Disposition": 'attachment; filename="kovr-feedback.zip"', "Cache-Control": "no-store"})
