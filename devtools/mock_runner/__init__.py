"""A bundled mock Task Runner: same HTTP protocol as the real service, plus test hooks.

In tests::

    with MockTaskRunner(duration=0.3) as runner:
        ...  # point the executor at runner.url, then assert on runner.requests()
        assert runner.in_flight()["max"] <= 2  # a run's maxParallel held

From a shell: ``python -m devtools.mock_runner --port 8080``.
"""

from devtools.mock_runner.server import (
    DURATION_LABEL,
    FAIL_ATTEMPTS_LABEL,
    FAULT_PATHS,
    FINAL_LABEL,
    MockTaskRunner,
    fingerprint,
    job_state,
)

__all__ = [
    "DURATION_LABEL",
    "FAIL_ATTEMPTS_LABEL",
    "FAULT_PATHS",
    "FINAL_LABEL",
    "MockTaskRunner",
    "fingerprint",
    "job_state",
]
