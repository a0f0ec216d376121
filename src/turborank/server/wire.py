"""Request bodies that every JSON reader, and our own responses, can carry: I-JSON (RFC 7493).

Python's ``json`` accepts ``NaN``, ``Infinity``, numbers that overflow to infinity (``1e400``) and lone
UTF-16 surrogates (``"\\ud800"``); none of them can be written back as JSON or UTF-8, and the tokenizer
refuses surrogates. They are refused once here, before validation, with the path of the offending field.
"""

from __future__ import annotations

import math
from email.message import Message
from typing import Any

from starlette.requests import Request

from ..tokenization import LONE_SURROGATE
from .errors import InvalidBody


def is_json_content_type(value: str | None) -> bool:
    """``application/json`` or ``application/*+json``, as FastAPI decides whether to parse a body."""
    if not value:
        return False
    message = Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    is_json = subtype == "json" or subtype.endswith("+json")
    return message.get_content_maintype() == "application" and is_json


def find_unportable(value: Any) -> tuple[str, str] | None:
    """(path, problem) of a non-finite number or lone surrogate in a parsed JSON value, else None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, f"{item} is not a finite number (JSON has no NaN, Infinity or out-of-range numbers)"
        if isinstance(item, str) and LONE_SURROGATE.search(item):
            return path, "holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not Unicode text"
        if isinstance(item, dict):
            for key, child in item.items():
                if LONE_SURROGATE.search(key):
                    return path or "body", "has a key with a lone UTF-16 surrogate escape"
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


async def require_portable_json(request: Request) -> None:
    """FastAPI dependency of the rerank routes: refuse bodies our responses could not echo.

    It runs after FastAPI parsed the body and before the body is validated; ``request.json()`` returns
    the parse FastAPI already made (Starlette caches it on the request).

    Raises:
        InvalidBody: the body is empty, or naming the field and what to send instead.
    """
    if not is_json_content_type(request.headers.get("content-type")):
        return
    if not await request.body():  # FastAPI would call it a missing field (422); it is a missing body
        raise InvalidBody("body: empty; send a JSON object with the request's fields")
    found = find_unportable(await request.json())
    if found is not None:
        path, problem = found
        raise InvalidBody(f"{path or 'body'}: {problem}; send finite numbers and valid Unicode text")
