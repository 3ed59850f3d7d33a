"""The server-rendered pages (ui_templates/ + htmx) and their static files."""

from __future__ import annotations

from fastapi import APIRouter

from backend.web import account, admin, chat, share, static_files

router = APIRouter(include_in_schema=False)
router.include_router(static_files.router)
router.include_router(account.router)
router.include_router(chat.router)
router.include_router(admin.router)
router.include_router(share.router)
