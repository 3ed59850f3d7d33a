"""Pages: sign-in, sign-up, sign-out, settings (profile, answer style, password, API tokens), language."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from backend.chat.schemas import ANSWER_STYLES
from backend.core.errors import AppError
from backend.core.i18n import LANG_COOKIE, LOCALES, message_for, translator
from backend.core.text import nfc
from backend.http import cookies
from backend.http.deps import CsrfProtected, DbDep, OptionalUser, SettingsDep, client_ip, public_base_url
from backend.schemas.shares import SharePublic
from backend.schemas.usage import UsagePublic
from backend.schemas.users import PasswordChange, UserCreate, UserUpdate
from backend.services import account, admin, auth, usage
from backend.services import shares as shares_service
from backend.web import usage_chart
from backend.web.common import locale, safe_next, to_login, user_view
from backend.web.templating import render

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=256)]


def _validation_message(exc: ValidationError, request: Request) -> str:
    fields = ", ".join(dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e.get("loc")))
    return f"{message_for('validation_error', locale(request))} ({fields})"


@router.get("/")
async def root(user: OptionalUser) -> Response:
    return RedirectResponse("/chat" if user else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request, user: OptionalUser) -> Response:
    if user:
        return RedirectResponse("/chat", status_code=303)
    return render(request, "login.html")


@router.post("/login", dependencies=[CsrfProtected])
async def login(request: Request, db: DbDep, settings: SettingsDep, email: Text, password: Text) -> Response:
    try:
        user = await auth.authenticate(db=db, settings=settings, email=str(nfc(email)), password=str(nfc(password)),
                                       client_ip=client_ip(request))
    except AppError as exc:
        return render(request, "login.html", exc.status_code, email=email,
                      error=message_for(exc.code, locale(request)))
    return await _signed_in(db, settings, user)


@router.get("/signup")
async def signup_page(request: Request, user: OptionalUser) -> Response:
    if user:
        return RedirectResponse("/chat", status_code=303)
    return render(request, "signup.html")


@router.post("/signup", dependencies=[CsrfProtected])
async def signup(
    request: Request, db: DbDep, settings: SettingsDep, email: Text, password: Text, display_name: Text,
) -> Response:
    again = {"email": email, "display_name": display_name}
    try:
        body = UserCreate(email=email, password=password, display_name=display_name)
        user = await auth.signup_from_client(
            db=db, settings=settings, email=body.email, password=body.password, display_name=body.display_name,
            client_ip=client_ip(request))
    except ValidationError as exc:
        return render(request, "signup.html", 422, error=_validation_message(exc, request), **again)
    except AppError as exc:
        return render(request, "signup.html", exc.status_code, error=message_for(exc.code, locale(request)),
                      **again)
    return await _signed_in(db, settings, user)


async def _signed_in(db: DbDep, settings: SettingsDep, user: dict[str, Any]) -> Response:
    tokens = await auth.issue_session_tokens(db=db, settings=settings, user=user, client="browser")
    response = RedirectResponse("/chat", status_code=303)
    cookies.set_session_cookies(response, tokens, settings)
    return response


@router.post("/logout", dependencies=[CsrfProtected])
async def logout(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    refresh = cookies.read(request, cookies.REFRESH_COOKIE, settings) or ""
    await auth.logout(db=db, refresh_token=refresh[:512] or None)
    response = RedirectResponse("/login", status_code=303)
    cookies.clear_session_cookies(response, settings)
    return response


@router.get("/lang/{choice}")
async def choose_language(choice: str, next: str | None = None) -> Response:
    response = RedirectResponse(safe_next(next, "/"), status_code=303)
    if choice in LOCALES:
        response.set_cookie(LANG_COOKIE, choice, max_age=365 * 86400, samesite="lax", path="/")
    return response


async def _settings_page(request: Request, db: DbDep, user: dict[str, Any], status_code: int = 200,
                         **extra: object) -> Response:
    tokens = await account.list_tokens(db, user_id=user["_id"])
    views = [{"id": str(t["_id"]), "name": t["name"], "prefix": t["prefix"], "last_used_at": t.get("last_used_at")}
             for t in tokens]
    report = await usage.report(request.app.state.settings, db, user=user)
    return render(request, "settings.html", status_code, user=user_view(user), tokens=views,
                  answer_styles=list(ANSWER_STYLES), is_admin=admin.is_admin(user), **usage_context(request, report),
                  shares=await _share_views(request, db, user), **extra)


def usage_context(request: Request, report: UsagePublic) -> dict[str, Any]:
    """What partials/usage_chart.html draws."""
    return {"usage": report, "chart": usage_chart.build(report, locale(request)),
            "reset_text": usage_chart.reset_text(report, locale(request))}


async def _share_views(request: Request, db: DbDep, user: dict[str, Any]) -> list[SharePublic]:
    base = public_base_url(request, request.app.state.settings)
    return [SharePublic.from_doc(s, base_url=base) for s in await shares_service.list_shares(db, user_id=user["_id"])]


@router.get("/settings")
async def settings_page(request: Request, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    return await _settings_page(request, db, user)


async def _save_profile(request: Request, db: DbDep, user: dict[str, Any], **fields: object) -> Response:
    """One profile form: validated, saved through the account service, the page shown again."""
    try:
        changes = UserUpdate(**fields).model_dump(exclude_none=True)
    except ValidationError as exc:
        return await _settings_page(request, db, user, 422, error=_validation_message(exc, request))
    updated = await account.update_profile(db, user=user, changes=changes, settings=request.app.state.settings)
    return await _settings_page(request, db, updated, notice=translator(locale(request))("saved"))


@router.post("/settings/profile")
async def update_profile(request: Request, db: DbDep, user: OptionalUser, display_name: Text) -> Response:
    if user is None:
        return to_login(request)
    return await _save_profile(request, db, user, display_name=display_name)


@router.post("/settings/answer-style")
async def update_answer_style(request: Request, db: DbDep, user: OptionalUser, answer_style: Text) -> Response:
    if user is None:
        return to_login(request)
    return await _save_profile(request, db, user, answer_style=answer_style)


@router.post("/settings/consent")
async def update_consent(
    request: Request, db: DbDep, user: OptionalUser, training_consent: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """The consent checkbox: an unchecked box is simply absent from the form, so absent = off."""
    if user is None:
        return to_login(request)
    return await _save_profile(request, db, user, training_consent=training_consent == "yes")


@router.post("/settings/password")
async def change_password(
    request: Request, db: DbDep, settings: SettingsDep, user: OptionalUser, current_password: Text,
    new_password: Text,
) -> Response:
    if user is None:
        return to_login(request)
    try:
        body = PasswordChange(current_password=current_password, new_password=new_password)
        family = await auth.family_of(db=db, refresh_token=cookies.read(request, cookies.REFRESH_COOKIE, settings))
        await auth.change_password(db=db, user=user, current_password=body.current_password,
                                   new_password=body.new_password, keep_family=family)
    except ValidationError as exc:
        return await _settings_page(request, db, user, 422, error=_validation_message(exc, request))
    except AppError as exc:
        return await _settings_page(request, db, user, exc.status_code,
                                    error=message_for(exc.code, locale(request)))
    return await _settings_page(request, db, user, notice=translator(locale(request))("password_changed"))


@router.post("/settings/delete-account")
async def delete_account(
    request: Request, db: DbDep, settings: SettingsDep, user: OptionalUser, password: Text,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    if user is None:
        return to_login(request)
    if confirm != "yes":
        return await _settings_page(request, db, user, 422, error=message_for("validation_error", locale(request)))
    try:
        await auth.delete_account(db=db, user=user, password=str(nfc(password)))
    except AppError as exc:
        return await _settings_page(request, db, user, exc.status_code,
                                    error=message_for(exc.code, locale(request)))
    response = RedirectResponse("/signup", status_code=303)
    cookies.clear_session_cookies(response, settings)
    return response


@router.post("/settings/tokens")
async def create_token(
    request: Request, db: DbDep, user: OptionalUser, name: Annotated[str, Form(max_length=100)]
) -> Response:
    if user is None:
        return to_login(request)
    clean = str(nfc(name)).strip()
    if not clean:
        return await _settings_page(request, db, user, 422, error=message_for("validation_error", locale(request)))
    _, token = await auth.create_api_token(db=db, user=user, name=clean)
    return await _settings_page(request, db, user, new_token=token)


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    with contextlib.suppress(AppError):  # already revoked (another tab): the list shows the truth
        await account.revoke_token(db, user_id=user["_id"], token_id=token_id)
    return RedirectResponse("/settings", status_code=303)
