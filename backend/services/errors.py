"""Domain errors of the services; routes and deps map them to HTTP errors (see backend/api/errors.py)."""

from __future__ import annotations


class ServiceError(Exception):
    code = "bad_request"


class InvalidCredentials(ServiceError):
    code = "invalid_credentials"


class AccountDisabled(ServiceError):
    code = "account_disabled"


class EmailAlreadyUsed(ServiceError):
    code = "email_taken"


class WrongPassword(ServiceError):
    code = "wrong_password"


class InvalidRefreshToken(ServiceError):
    code = "invalid_refresh_token"


class RefreshTokenReused(ServiceError):
    code = "refresh_token_reused"


class InvalidAccessToken(ServiceError):
    code = "invalid_token"


class RateLimited(ServiceError):
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s
