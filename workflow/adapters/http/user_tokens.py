"""ID tokens from gcloud user credentials, for the command line (the functions run as a
service account, so this is not shipped with them)."""

from __future__ import annotations

from typing import Any

from ...errors import AuthError
from .auth import HOW_TO, IdTokenSource


class UserIdTokenSource(IdTokenSource):
    """`IdTokenSource` that also takes gcloud user credentials from the environment."""

    def _credentials(self, audience: str) -> Any:
        import google.auth
        from google.auth import exceptions
        from google.oauth2 import credentials as user_credentials

        try:
            return super()._credentials(audience)
        except AuthError as no_service_account:
            first = no_service_account.__cause__
        try:
            creds, _ = google.auth.default()
        except exceptions.DefaultCredentialsError:
            raise AuthError(f"no Google credentials found to call {audience}; {HOW_TO}") from first
        if isinstance(creds, user_credentials.Credentials):
            return _UserIdToken(creds)
        raise AuthError(f"these credentials cannot mint an ID token ({first}); {HOW_TO}") from first


class _UserIdToken:
    """gcloud user credentials, which cannot mint a token for an arbitrary audience: the
    user's own ID token (Cloud Run accepts it from a user granted roles/run.invoker),
    refreshed with the refresh token."""

    def __init__(self, creds: Any) -> None:
        self._creds = creds

    @property
    def valid(self) -> bool:
        return bool(self._creds.valid and self._creds.id_token)

    def refresh(self, request: Any) -> None:
        self._creds.refresh(request)

    @property
    def token(self) -> str | None:
        value = self._creds.id_token
        return None if value is None else str(value)
