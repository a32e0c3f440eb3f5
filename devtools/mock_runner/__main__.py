"""Run the mock Task Runner in the foreground until SIGINT or SIGTERM.

Prints ``mock Task Runner listening on http://HOST:PORT`` on stdout once it accepts
connections, then one line per request (method, path, status) on stderr.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType

from devtools.mock_runner import DURATION_LABEL, FAIL_ATTEMPTS_LABEL, FINAL_LABEL, MockTaskRunner
from workflow.cli.options import seconds_arg

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {value}")
    return value


def _token(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command line: every option documented in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mock_runner",
        description=(
            "Mock Task Runner: answers POST /job and GET /jobstatus like the real service. "
            "Jobs walk QUEUED, PREPARING, RUNNING (a third of the duration each) and end "
            "SUCCEEDED, or FAILED when the imageUri contains 'error'. Job labels: "
            f"{DURATION_LABEL} (seconds), {FINAL_LABEL} (SUCCEEDED or FAILED: ends at once), "
            f"{FAIL_ATTEMPTS_LABEL} (N: the first N submissions of a job_name with it fail). Test hooks: "
            "GET /_mock/requests, GET /_mock/submissions, GET /_mock/in_flight (jobs in flight now "
            "and at most), POST /_mock/reset, POST /_mock/faults "
            "(path, status, count, body, delay, accept, retry_after, echo_headers)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=_port, default=8080, help="port to bind; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--duration",
        type=seconds_arg,
        default=3.0,
        metavar="SECONDS",
        help=f"default job duration in seconds; a job's label {DURATION_LABEL} overrides it (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        type=_token,
        default=None,
        metavar="T",
        help="require 'Authorization: Bearer T' on /job and /jobstatus (default: no auth)",
    )
    return parser


def _install_stop_handlers() -> list[int]:
    """Route SIGINT and SIGTERM into the returned list instead of killing the process."""
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, on_signal)
    return received


def _wait_for(received: list[int]) -> int:
    """Block until `received` holds a signal number; returns it."""
    while not received:
        time.sleep(0.1)
    return received[0]


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code (0 on a signal, 1 if bind fails)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    received = _install_stop_handlers()
    runner = MockTaskRunner(host=args.host, port=args.port, duration=args.duration, token=args.token)
    try:
        runner.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"mock Task Runner listening on {runner.url}", flush=True)
        signum = _wait_for(received)
        logging.getLogger(__name__).info("stopping on %s", signal.Signals(signum).name)
    finally:
        runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
