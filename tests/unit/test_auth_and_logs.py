from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from workflow import logs
from workflow.adapters.http.auth import IdTokenSource, SealedTokens, StaticToken
from workflow.adapters.http.user_tokens import UserIdTokenSource
from workflow.errors import AuthError


class FakeCredentials:
    def __init__(self) -> None:
        self.refreshes = 0
        self.valid = False
        self.token: str | None = None

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.valid = True
        self.token = f"id-token-{self.refreshes}"


def test_id_tokens_are_cached_per_audience_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, FakeCredentials] = {}
    monkeypatch.setattr(IdTokenSource, "_credentials", lambda self, aud: made.setdefault(aud, FakeCredentials()))
    source = IdTokenSource()
    assert source.token("https://a") == "id-token-1"
    assert source.token("https://a") == "id-token-1"  # still valid: no refresh
    assert source.token("https://b") == "id-token-1" and len(made) == 2
    made["https://a"].valid = False  # expired
    assert source.token("https://a") == "id-token-2"
    assert made["https://a"].refreshes == 2


@pytest.mark.parametrize("source", [IdTokenSource, UserIdTokenSource])
def test_no_credentials_says_how_to_get_a_token(source: type[IdTokenSource], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(AuthError) as err:
        source().token("https://runner.example")
    assert "--tr-auth-jwt" in str(err.value) and "--tr-auth-jwt none" in str(err.value)


def test_gcloud_user_credentials_give_the_users_own_id_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth
    from google.oauth2 import credentials as user_credentials

    class UserCredentials(user_credentials.Credentials):
        def __init__(self) -> None:
            super().__init__(token="access-token")
            self._id_token = None

        def refresh(self, request: Any) -> None:
            self._id_token = "users-id-token"

    def no_service_account(self: IdTokenSource, audience: str) -> Any:
        raise AuthError("no service account") from ValueError("no key")

    monkeypatch.setattr(IdTokenSource, "_credentials", no_service_account)
    monkeypatch.setattr(google.auth, "default", lambda: (UserCredentials(), "project"))
    assert UserIdTokenSource().token("https://runner.example") == "users-id-token"
    with pytest.raises(AuthError, match="no service account"):
        IdTokenSource().token("https://runner.example")
    monkeypatch.setattr(google.auth, "default", lambda: (object(), "project"))
    with pytest.raises(AuthError, match=r"these credentials cannot mint an ID token \(no key\)"):
        UserIdTokenSource().token("https://runner.example")


def test_sealed_tokens_round_trip_and_are_not_readable() -> None:
    from cryptography.fernet import Fernet

    tokens = SealedTokens(Fernet.generate_key().decode(), StaticToken("own"))
    sealed = tokens.seal("my-jwt", run_id="r1", origin="https://aud.example/x")
    assert "my-jwt" not in sealed and tokens.token("https://aud.example", sealed, "r1") == "my-jwt"
    with pytest.raises(AuthError, match="refused"):
        tokens.token("https://aud.example", sealed, "r2")
    with pytest.raises(AuthError, match="refused"):
        tokens.token("https://other.example", sealed, "r1")
    other = SealedTokens(Fernet.generate_key().decode(), StaticToken("own"))
    with pytest.raises(AuthError):
        other.token("aud", sealed)
    with pytest.raises(AuthError, match="not a Fernet key"):
        SealedTokens("short", StaticToken("own")).seal("x", run_id="r", origin="https://a")
    assert "my-jwt" not in repr(tokens) and "own" not in repr(StaticToken("own"))


def test_a_rotated_key_list_opens_tokens_sealed_with_the_previous_key() -> None:
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = SealedTokens(old, StaticToken("own")).seal("jwt-1", run_id="r1", origin="https://a.example")
    rotated = SealedTokens(f"{new}, {old}", StaticToken("own"))
    assert rotated.token("https://a.example", sealed_before, "r1") == "jwt-1"
    sealed_after = rotated.seal("jwt-2", run_id="r2", origin="https://a.example")
    assert SealedTokens(new, StaticToken("own")).token("https://a.example", sealed_after, "r2") == "jwt-2"
    with pytest.raises(AuthError, match="cannot be opened"):  # sealed with the new key: the old alone cannot
        SealedTokens(old, StaticToken("own")).token("https://a.example", sealed_after, "r2")
    with pytest.raises(AuthError, match="comma-separated list"):
        SealedTokens(f"{new},short", StaticToken("own")).seal("x", run_id="r", origin="https://a")


def test_json_logs_carry_severity_and_ids(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(logging.INFO, json_format=True)
    try:
        logging.getLogger("workflow.test").warning("hello %s", "world", extra={"run_id": "r1", "step_id": "s1"})
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line == {"severity": "WARNING", "message": "hello world", "logger": "workflow.test",
                        "run_id": "r1", "step_id": "s1"}
    finally:
        logs.configure(logging.WARNING, json_format=False)


def test_token_sources_describe_the_credential_never_the_token() -> None:
    from cryptography.fernet import Fernet

    assert StaticToken("tok-SECRET-123").describe("https://a") == "the token given with --tr-auth-jwt"
    assert "no authentication" in StaticToken("none").describe("https://a")
    assert StaticToken("x", origin="WORKFLOW_TR_AUTH_MODE=none").describe("https://a") == "WORKFLOW_TR_AUTH_MODE=none"
    assert IdTokenSource().describe("https://a") == "an ID token from the ambient Google credentials for audience https://a"
    tokens = SealedTokens(Fernet.generate_key().decode(), StaticToken("tok-SECRET-123"))
    sealed = tokens.seal("tok-SECRET-123", run_id="r1", origin="https://a")
    assert tokens.describe("https://a", sealed).startswith("the token given when this run was started")
    assert tokens.describe("https://a") == "the token given with --tr-auth-jwt"


def test_urllib3_retry_warnings_are_dropped_and_other_warnings_kept(caplog: pytest.LogCaptureFixture) -> None:
    logs.quiet_library_retries()
    logs.quiet_library_retries()  # idempotent
    pool = logging.getLogger("urllib3.connectionpool")
    assert len(pool.filters) == 1
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        pool.warning("Retrying (%r) after connection broken", "Retry(total=4)", extra={"__urllib3-retry-warning": {}})
        pool.warning("Connection pool is full, discarding connection")
    assert [r.getMessage() for r in caplog.records] == ["Connection pool is full, discarding connection"]


def test_text_logs_write_control_characters_as_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(logging.INFO, json_format=False)
    try:
        logging.getLogger("workflow.test").warning("step failed: %s", "\x1b[2J\x1b]0;owned\x07 \u202egnp.exe",
                                                   extra={"run_id": "r\x1b1", "step_id": "s"})
    finally:
        logs.configure(logging.WARNING)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "step failed: \\x1b[2J\\x1b]0;owned\\x07 \\u202egnp.exe [run_id=r\\x1b1 step_id=s]" in err
