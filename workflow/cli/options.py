"""Parsing shared by the commands: errors as InputError, the Go tool's single-dash flags,
and the options of every command that executes a run (token, polling, timeout, store)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from ..adapters.http.auth import check_token
from ..errors import InputError
from ..settings import POLL_ENV, TIMEOUT_ENV, Settings, parse_seconds

DEFAULT_DB = "workflow-runs.sqlite3"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise InputError(message)


def flags(*names: str) -> list[str]:
    """Each `--name` also as `-name`, the Go flag package's spelling (`-dag-path=x`)."""
    return [*names, *(n[1:] for n in names)]


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, metavar="PATH",
                   help="SQLite file recording runs (default: %(default)s; ':memory:' keeps nothing)")


def add_execution(p: argparse.ArgumentParser) -> None:
    """Options of a command that talks to the Task Runner."""
    p.add_argument(*flags("--tr-auth-jwt"), dest="jwt", metavar="JWT",
                   help="bearer token sent as is (even 'none'); without it, an ID token for the "
                        "Task Runner URL is obtained from Google credentials")
    p.add_argument(*flags("--check-state-duration-sec"), dest="poll", metavar="SECONDS",
                   help=f"polling interval; overrides {POLL_ENV}")
    p.add_argument(*flags("--step-timeout-sec"), dest="timeout", metavar="SECONDS",
                   help=f"step timeout; overrides {TIMEOUT_ENV}")
    add_db(p)
    p.add_argument("--verbose", "-v", action="store_true", help="log every handler's work to stderr")


def settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's overrides; checks the token too."""
    if args.jwt is not None:
        check_token(args.jwt, "--tr-auth-jwt")
    result = Settings.from_env()
    if args.poll is not None:
        result = replace(result, poll_interval=parse_seconds(args.poll, "--check-state-duration-sec",
                                                             allow_zero=True))
    if args.timeout is not None:
        result = replace(result, step_timeout=parse_seconds(args.timeout, "--step-timeout-sec", allow_zero=False))
    return result
