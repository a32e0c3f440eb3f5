"""Bearer tokens for the Task Runner (docs/cloud-runtime.md: Tokens). A token is never logged or stored in clear."""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from ...errors import AuthError
from ...model.urls import origin_of

MAX_TOKEN_CHARS = 16_384

HOW_TO = (
    "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run where a "
    "metadata server provides a service account, or pass "
    "--tr-auth-jwt \"$(gcloud auth print-identity-token)\" "
    "(or --tr-auth-jwt none for a Task Runner without authentication, such as the bundled mock)"
)


def check_token(token: str, where: str) -> str:
    """`token` if it can be sent as a bearer token; AuthError naming `where` otherwise.

    Refused: empty, longer than MAX_TOKEN_CHARS, or holding whitespace or control
    characters (they would break the header, and the HTTP library's error would quote it).
    The error never contains the token.
    """
    if not token:
        raise AuthError(f"{where} is empty (is gcloud logged in? for a Task Runner without "
                        "authentication, pass 'none')")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(f"{where} is {len(token)} characters long (at most {MAX_TOKEN_CHARS})")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise AuthError(f"{where} contains whitespace or control characters (a pasted line break?)")
    return token


class TokenSource(Protocol):
    def token(self, audience: str, sealed: str = "", run_id: str = "") -> str:
        """A bearer token for `audience` (`sealed`: the run `run_id`'s own sealed token, if any);
        AuthError with a way out when there is none."""

    def describe(self, audience: str, sealed: str = "") -> str:
        """Which credential `token` gives for these arguments, in words; never the token."""


class StaticToken:
    """A token given as is (`--tr-auth-jwt`, `none` included)."""

    def __init__(self, value: str, origin: str = "the token given with --tr-auth-jwt") -> None:
        """`origin`: where the value came from, as error messages name it."""
        self._value = value
        self._origin = origin

    def token(self, audience: str, sealed: str = "", run_id: str = "") -> str:
        return self._value

    def describe(self, audience: str, sealed: str = "") -> str:
        return f"{self._origin} ('none': no authentication)" if self._value == "none" else self._origin

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class IdTokenSource:
    """ID tokens for the Task Runner URL as audience, from google-auth's ambient credentials;
    thread-safe, one credentials object per audience, refreshed only when expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._creds: dict[str, Any] = {}

    def token(self, audience: str, sealed: str = "", run_id: str = "") -> str:
        from google.auth.transport.requests import Request

        with self._lock:
            creds = self._creds.get(audience)
            if creds is None:
                creds = self._creds[audience] = self._credentials(audience)
            if not creds.valid:
                try:
                    creds.refresh(Request())
                except Exception as exc:  # google-auth raises several unrelated types
                    raise AuthError(f"could not get an ID token for {audience}: {exc}") from exc
            token = getattr(creds, "token", None) or getattr(creds, "id_token", None)
        if not token:
            raise AuthError(f"the credentials found give no ID token for {audience}; {HOW_TO}")
        return str(token)

    def describe(self, audience: str, sealed: str = "") -> str:
        return f"an ID token from the ambient Google credentials for audience {audience}"

    def _credentials(self, audience: str) -> Any:
        """Credentials that mint ID tokens for `audience`: a service account key, an
        impersonated service account or a metadata server; AuthError if there are none."""
        from google.auth import exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import id_token

        try:
            return id_token.fetch_id_token_credentials(audience, request=Request())  # type: ignore[no-untyped-call]
        except exceptions.DefaultCredentialsError as exc:
            raise AuthError(f"no credentials that can mint an ID token for {audience} ({exc}); {HOW_TO}") from exc


class SealedTokens:
    """Seals a caller's token so it is stored and carried only encrypted (Fernet, with the
    deployment's key); opens it per request. Runs without one use the fallback source.

    `key` may list several Fernet keys separated by commas, newest first (MultiFernet):
    tokens are sealed with the first and opened with any, so a key can be rotated while
    runs sealed with the previous one go on (docs/security.md: rotating the token key)."""

    PREFIX = "fernet:"

    def __init__(self, key: str | None, fallback: TokenSource) -> None:
        self._key = key
        self._fallback = fallback

    def seal(self, token: str, *, run_id: str, origin: str) -> str:
        """Encrypt `token` bound to one run and one Task Runner origin (checked on open)."""
        if not self._key:
            raise AuthError(
                "a Task Runner token was given but this deployment has no WORKFLOW_TOKEN_KEY to "
                "seal it with; leave the token out to use the deployment's own identity"
            )
        payload = json.dumps({"token": token, "run_id": run_id, "origin": origin_of(origin)})
        return self.PREFIX + str(self._fernet().encrypt(payload.encode()).decode())

    def token(self, audience: str, sealed: str = "", run_id: str = "") -> str:
        if not sealed:
            return self._fallback.token(audience)
        from cryptography.fernet import InvalidToken

        try:
            payload = json.loads(self._fernet().decrypt(sealed.removeprefix(self.PREFIX).encode()))
            token, bound_run, bound_origin = payload["token"], payload["run_id"], payload["origin"]
        except (InvalidToken, ValueError, KeyError, TypeError) as exc:
            raise AuthError("this run's sealed Task Runner token cannot be opened with the current key") from exc
        if bound_run != run_id or bound_origin != origin_of(audience):
            raise AuthError(f"a sealed Task Runner token of run {bound_run!r} for {bound_origin} was "
                            f"presented for run {run_id!r} at {origin_of(audience)}: refused")
        return str(token)

    def describe(self, audience: str, sealed: str = "") -> str:
        if not sealed:
            return self._fallback.describe(audience)
        return "the token given when this run was started (kept sealed with the run)"

    def _fernet(self) -> Any:
        from cryptography.fernet import Fernet, MultiFernet

        if not self._key:
            raise AuthError("WORKFLOW_TOKEN_KEY is not set: cannot open a sealed token")
        keys = [k.strip() for k in self._key.split(",") if k.strip()]
        try:
            return MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError as exc:
            raise AuthError(
                "WORKFLOW_TOKEN_KEY is not a Fernet key, or a comma-separated list of them, newest first "
                "(32 url-safe base64-encoded bytes each)"
            ) from exc

    def __repr__(self) -> str:
        return "SealedTokens(<key redacted>)"
