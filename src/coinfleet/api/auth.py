"""The bearer token: where it comes from, and the check every route runs (constant-time)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coinfleet.config import Settings
from coinfleet.constants import API_TOKEN_FILE
from coinfleet.errors import CoinfleetError

log = structlog.get_logger(__name__)
#: bytes of randomness in a generated token (43 URL-safe characters)
TOKEN_BYTES = 32
_bearer = HTTPBearer(auto_error=False, description="COINFLEET_API_TOKEN, or the token in COINFLEET_HOME")


class Unauthorized(CoinfleetError):
    """A request lacks the bearer token or carries a wrong one."""


@dataclass(frozen=True, kw_only=True)
class ApiToken:
    """The token and whether it was made just now (then it is printed once)."""

    value: str
    generated: bool
    path: Path | None  #: the file holding a generated token


def resolve_token(settings: Settings) -> ApiToken:
    """COINFLEET_API_TOKEN, else the token stored under home, else a new one stored there (mode 0600)."""
    if settings.api_token is not None and settings.api_token.get_secret_value():
        return ApiToken(value=settings.api_token.get_secret_value(), generated=False, path=None)
    path = settings.home / API_TOKEN_FILE
    if path.exists():
        return ApiToken(value=path.read_text("utf-8").strip(), generated=False, path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    log.info("api_token_generated", path=str(path))
    return ApiToken(value=token, generated=True, path=path)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (where reads need no token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TokenCheck:
    """Compares a request's bearer token with the configured one in constant time."""

    token: str
    reads_need_token: bool

    def matches(self, presented: str | None) -> bool:
        """True when `presented` is the token."""
        if presented is None:
            return False
        return secrets.compare_digest(presented.encode("utf-8"), self.token.encode("utf-8"))

    def require(self, presented: str | None) -> None:
        """Raise Unauthorized unless `presented` is the token."""
        if presented is None:
            raise Unauthorized("this route needs the header 'Authorization: Bearer <token>'")
        if not self.matches(presented):
            raise Unauthorized("the bearer token is wrong; use COINFLEET_API_TOKEN or the api-token file")


def _presented(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None else credentials.credentials


def token_check(request: Request) -> TokenCheck:
    """The app's token check."""
    check: TokenCheck = request.app.state.token_check
    return check


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Check = Annotated[TokenCheck, Depends(token_check)]


async def require_write(credentials: Credentials, check: Check) -> None:
    """Writes always need the token."""
    check.require(_presented(credentials))


async def require_read(credentials: Credentials, check: Check) -> None:
    """Reads need the token when the server listens beyond loopback."""
    if check.reads_need_token:
        check.require(_presented(credentials))
