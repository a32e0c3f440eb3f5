"""Parsing shared by the commands: errors as InputError, the Go tool's single-dash flags,
the options of every command that executes a run (token, polling, timeout, store), and
those choosing the cloud runtime instead (`--cloud`, `--project`, `--database`)."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from ..adapters.http.auth import check_token
from ..bootstrap.cloud import DATABASE_ENV, PROJECT_ENV
from ..bootstrap.control import CONTROL_TOPIC_ENV, DEFAULT_CONTROL_TOPIC
from ..errors import InputError
from ..settings import POLL_ENV, TIMEOUT_ENV, Settings, parse_seconds

VERSION = "0.1.0"  # the package's version (pyproject.toml reads it here)
DEFAULT_DB = "workflow-runs.sqlite3"
JWT_ENV = "WORKFLOW_TR_AUTH_JWT"


def prog(verb: str = "") -> str:
    """The command as it was called: `dag-workflow` when installed, else `python main.py`."""
    name = "dag-workflow" if os.path.basename(sys.argv[0]) == "dag-workflow" else "python main.py"
    return f"{name} {verb}" if verb else name


class Parser(argparse.ArgumentParser):
    """Errors as InputError; no abbreviated options; an unknown option is named, with the
    closest known one, before any complaint about missing ones."""

    def __init__(self, verb: str = "", **kwargs: object) -> None:
        super().__init__(prog=prog(verb), allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise InputError(message)

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        unknown = self._unknown_option(argv)
        if unknown:
            known = sorted({"--" + o.lstrip("-") for o in self._option_string_actions})
            word = "--" + unknown.lstrip("-")
            close = [k for k in known if k.startswith(word)] or difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.error(f"unknown option {unknown}{hint}; '{self.prog} --help' lists the options")
        return self.parse_args(argv)

    def _unknown_option(self, argv: Sequence[str]) -> str:
        """The first option-like word of `argv` that is no option of this parser ("" if none)."""
        takes_value = False
        for word in argv:
            if takes_value or word == "-" or not word.startswith("-") or word[1:2].isdigit():
                takes_value = False
                continue
            if word == "--":
                break
            name, equals, _ = word.partition("=")
            action = self._option_string_actions.get(name)
            if action is None:
                return name
            takes_value = not equals and action.nargs != 0
        return ""


def seconds_arg(raw: str) -> float:
    """An argparse `type`: a finite number of seconds >= 0."""
    try:
        return parse_seconds(raw, "", allow_zero=True)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(raw: str) -> int:
    """An argparse `type`: a whole number >= 1."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number >= 1")
    return value


def flags(*names: str) -> list[str]:
    """Each `--name` also as `-name`, the Go flag package's spelling (`-dag-path=x`)."""
    return [*names, *(n[1:] for n in names)]


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, metavar="PATH",
                   help="SQLite file recording runs (default: %(default)s; ':memory:' keeps nothing)")


def add_cloud(p: argparse.ArgumentParser, *, requests: bool = False) -> None:
    """`--cloud` and where the cloud runtime is; with `requests`, how long to wait for one."""
    g = p.add_argument_group("the cloud runtime (instead of --db)")
    g.add_argument("--cloud", action="store_true",
                   help="the cloud runtime's runs: Firestore, read with Application Default Credentials "
                        "(or the emulator with FIRESTORE_EMULATOR_HOST)" + (
                            f"; the request is published on the control topic ({CONTROL_TOPIC_ENV}, default "
                            f"{DEFAULT_CONTROL_TOPIC}; PUBSUB_EMULATOR_HOST for the emulator) and handled by the "
                            "functions" if requests else ""))
    g.add_argument("--project", default="", metavar="ID", help=f"the cloud project (default: {PROJECT_ENV})")
    g.add_argument("--database", default="", metavar="NAME",
                   help=f"the Firestore database (default: {DATABASE_ENV}, else (default))")
    if requests:
        g.add_argument("--no-wait", action="store_true", help="print the request and return at once")
        g.add_argument("--timeout", dest="wait", type=seconds_arg, default=300.0, metavar="SECONDS",
                       help="wait at most this long for the run to show the request and end (default: "
                            "%(default)g); exit 3 if it does not show the request by then")


def parsed(p: Parser, argv: Sequence[str], *, cloud_token: bool = False) -> argparse.Namespace:
    """The arguments, checked to be those of one runtime (`cloud_token`: --tr-auth-jwt is
    taken with --cloud too, as a rerun's own token)."""
    args = p.parse(argv)
    check_runtime(args, cloud_token=cloud_token)
    return args


def check_runtime(args: argparse.Namespace, *, cloud_token: bool = False) -> None:
    """InputError for an option of the other runtime than the one chosen."""
    cloud_only = {"--project": args.project, "--database": args.database,
                  "--no-wait": getattr(args, "no_wait", False)}
    jwt = getattr(args, "jwt", None) is not None and not cloud_token
    embedded_only = {"--db": args.db != DEFAULT_DB, "--tr-auth-jwt": jwt,
                     "--tr-hostname": getattr(args, "tr_url", None) is not None,
                     "--check-state-duration-sec": getattr(args, "poll", None) is not None,
                     "--step-timeout-sec": getattr(args, "timeout", None) is not None}
    if args.cloud:
        given = [name for name, value in embedded_only.items() if value]
        if given:
            raise InputError(f"{', '.join(given)}: for the embedded runtime, not with --cloud (on the cloud the "
                             "functions' settings and the run's own credential hold)")
    else:
        given = [name for name, value in cloud_only.items() if value]
        if given:
            raise InputError(f"{', '.join(given)}: only with --cloud")


def add_execution(p: argparse.ArgumentParser, *, moved: bool = False) -> None:
    """Options of a command that talks to the Task Runner; with `moved`, its new URL too."""
    if moved:
        p.add_argument(*flags("--tr-hostname", "--tr-url"), dest="tr_url", metavar="URL",
                       help="the Task Runner's URL if it moved since the run started (recorded on the run)")
    p.add_argument(*flags("--tr-auth-jwt"), dest="jwt", metavar="JWT",
                   help=f"bearer token sent as is (even 'none'); default: {JWT_ENV} if set, else an ID "
                        "token for the Task Runner URL obtained from Google credentials")
    p.add_argument(*flags("--check-state-duration-sec"), dest="poll", metavar="SECONDS",
                   help=f"polling interval; overrides {POLL_ENV}")
    p.add_argument(*flags("--step-timeout-sec"), dest="timeout", metavar="SECONDS",
                   help=f"step timeout; overrides {TIMEOUT_ENV}")
    add_db(p)
    p.add_argument("--verbose", "-v", action="store_true", help="log every handler's work to stderr")


def cloud_jwt(args: argparse.Namespace) -> str | None:
    """The token given with --tr-auth-jwt, checked; None without it. WORKFLOW_TR_AUTH_JWT is
    not read here: a token kept for a local Task Runner must not reach a cloud run's one
    unasked."""
    return None if args.jwt is None else check_token(args.jwt, "--tr-auth-jwt")


def settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's overrides. Checks the token too,
    and sets `args.jwt` from WORKFLOW_TR_AUTH_JWT when --tr-auth-jwt is absent."""
    if args.jwt is not None:
        check_token(args.jwt, "--tr-auth-jwt")
    elif os.environ.get(JWT_ENV) is not None:
        args.jwt = os.environ[JWT_ENV]
        check_token(args.jwt, JWT_ENV)
    result = Settings.from_env()
    if args.poll is not None:
        result = replace(result, poll_interval=parse_seconds(args.poll, "--check-state-duration-sec",
                                                             allow_zero=True))
    if args.timeout is not None:
        result = replace(result, step_timeout=parse_seconds(args.timeout, "--step-timeout-sec", allow_zero=False))
    return result
