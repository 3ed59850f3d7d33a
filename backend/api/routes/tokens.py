"""/api/v1/tokens: personal API tokens (`kovr_...`) for programs."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from backend.http.deps import CurrentUser, DbDep
from backend.schemas.common import error_responses
from backend.schemas.tokens import ApiTokenCreate, ApiTokenCreated, ApiTokenPublic
from backend.services import account, auth

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiTokenCreated,
    responses=error_responses(401, 422),
)
async def create_token(body: ApiTokenCreate, user: CurrentUser, db: DbDep) -> ApiTokenCreated:
    """The full token is in this response only; afterwards just its prefix is shown."""
    doc, token = await auth.create_api_token(db=db, user=user, name=body.name)
    return ApiTokenCreated(**ApiTokenPublic.from_doc(doc).model_dump(), token=token)


@router.get("", response_model=list[ApiTokenPublic], responses=error_responses(401))
async def list_tokens(user: CurrentUser, db: DbDep) -> list[ApiTokenPublic]:
    return [ApiTokenPublic.from_doc(d) for d in await account.list_tokens(db, user_id=user["_id"])]


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
async def revoke_token(token_id: str, user: CurrentUser, db: DbDep) -> Response:
    await account.revoke_token(db, user_id=user["_id"], token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
