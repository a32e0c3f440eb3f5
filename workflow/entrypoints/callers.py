"""Who called an HTTP function: the email in the Google ID token that Cloud Run checked
before the request reached the function (the functions are never public: every call needs
`roles/run.invoker` and a valid token). Only the token's payload is read here, never its
signature (Cloud Run checked it), and the token itself is never logged or kept."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from ..adapters.http.auth import MAX_TOKEN_CHARS

# Cloud Run checks X-Serverless-Authorization when a request has it and then passes
# Authorization through unchecked; without it, Authorization is the header it checked.
CHECKED_HEADERS = ("X-Serverless-Authorization", "Authorization")
EMAIL = re.compile(r"^[^@\s,\x00-\x1f\x7f]{1,64}@[^@\s,\x00-\x1f\x7f]{1,189}$")


def verified_caller(headers: Mapping[str, str]) -> str:
    """The caller's email, in lower case, from the ID token of the header Cloud Run checked;
    "" when that header holds no bearer token with an email claim."""
    for name in CHECKED_HEADERS:
        value = headers.get(name)
        if value:
            return _email(value)
    return ""


def _email(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(token) > MAX_TOKEN_CHARS or len(parts) != 3:
        return ""
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return ""
    if not isinstance(payload, dict) or payload.get("email_verified") is False:
        return ""
    email = payload.get("email")
    return email.lower() if isinstance(email, str) and EMAIL.match(email) else ""
