"""The pages: server-rendered Jinja2 (ui_templates/) with htmx, a thin door over `backend.services`."""

from backend.web.routes import router

__all__ = ["router"]
