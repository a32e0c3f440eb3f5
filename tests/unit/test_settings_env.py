"""The engine settings read from the environment: the sweep's and the submission lease's."""

from __future__ import annotations

import pytest

from workflow.errors import InputError
from workflow.settings import SUBMIT_LEASE_ENV, Settings


def test_the_submission_lease_defaults_to_ten_minutes() -> None:
    assert Settings.from_env({}).submit_lease == 600.0


def test_the_submission_lease_comes_from_its_variable() -> None:
    settings = Settings.from_env({SUBMIT_LEASE_ENV: " 5.5 ", "WORKFLOW_STALE_AFTER_SEC": "6"})
    assert (settings.submit_lease, settings.stale_after) == (5.5, 6.0)


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "inf"])
def test_a_bad_submission_lease_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(InputError, match=SUBMIT_LEASE_ENV):
        Settings.from_env({SUBMIT_LEASE_ENV: raw})
