"""Shared by the command-line tests: the bundled mock Task Runner, requiring TOKEN."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workflow.mock_runner import MockTaskRunner

TOKEN = "test-token"


@pytest.fixture
def mock() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0.1, token=TOKEN) as m:
        yield m
