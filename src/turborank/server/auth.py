"""Optional bearer-key auth, compared in constant time against every accepted key."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import InvalidApiKey, MissingApiKey

# auto_error=False: the errors are ours (Jina's envelope and codes), the scheme is only for OpenAPI.
bearer = HTTPBearer(auto_error=False, description="one of the keys given with --api-key/--api-keys-file")


def key_matches(candidate: str, keys: list[bytes]) -> bool:
    """True if candidate equals one of keys; every key is compared so timing reveals nothing."""
    given = candidate.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> None:
    """FastAPI dependency: passes when auth is off or the bearer key is accepted.

    Raises:
        MissingApiKey: no ``Authorization`` header.
        InvalidApiKey: a header that is not ``Bearer <accepted key>``.
    """
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise MissingApiKey("this server needs an API key: send 'Authorization: Bearer <key>'")
    if not header.isascii():
        # Starlette reads header bytes as latin-1, so a UTF-8 and a latin-1 client would see different
        # keys; keys are printable ASCII (checked at startup), so refusing any other byte is consistent.
        raise InvalidApiKey("the Authorization header holds non-ASCII bytes; API keys are printable ASCII")
    if credentials is None or not key_matches(credentials.credentials, keys):
        raise InvalidApiKey(
            "the API key is not valid: send 'Authorization: Bearer <key>' with an accepted key"
        )
