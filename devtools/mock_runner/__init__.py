"""A bundled mock Task Runner: same HTTP protocol as the real service, plus test hooks.

In tests::

    with MockTaskRunner(duration=0.3) as runner:
        ...  # point the executor at runner.url, then assert on runner.requests()
        assert runner.in_flight()["max"] <= 2  # a run's maxParallel held

From a shell: ``python -m devtools.mock_runner --port 8080``.

Modules: `jobs` (what a submission asks for, how a job's state unfolds), `faults` (injected
answers), `state` (jobs, records and faults of one mock, the token check), `app` (the
Werkzeug routes), `server` (the threaded server's life cycle: :class:`MockTaskRunner`).
"""

from .app import wsgi_app
from .faults import FAULT_PATHS
from .jobs import DURATION_LABEL, FAIL_ATTEMPTS_LABEL, FINAL_LABEL, job_state, max_overlap
from .server import MockTaskRunner
from .state import RunnerState, fingerprint

__all__ = [
    "DURATION_LABEL",
    "FAIL_ATTEMPTS_LABEL",
    "FAULT_PATHS",
    "FINAL_LABEL",
    "MockTaskRunner",
    "RunnerState",
    "fingerprint",
    "job_state",
    "max_overlap",
    "wsgi_app",
]
