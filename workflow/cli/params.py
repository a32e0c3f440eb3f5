"""`--param NAME=VALUE` (repeatable) and `--param-file FILE` (a YAML or JSON mapping): a run's
parameter values as given, before they are checked against the DAG's declarations."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..dagfile.load import load_yaml
from ..errors import DagInvalid, InputError
from ..model.text import excerpt

MAX_PARAM_FILE = 1_048_576


def add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a value for the DAG's parameter NAME (repeatable); a list as JSON: "
                        "--param 'shards=[\"a\",\"b\"]'")
    p.add_argument("--param-file", metavar="FILE", help="parameter values in a YAML or JSON mapping")


def param_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values given: those of --param-file, then each --param (a later one wins). A
    value is text, except a --param value written as a JSON list, which is a list."""
    values: dict[str, Any] = _from_file(args.param_file) if getattr(args, "param_file", None) else {}
    for given in getattr(args, "param", None) or []:
        name, equals, value = given.partition("=")
        if not equals or not name.strip():
            raise InputError(f"--param {excerpt(given, 80)!r}: expected NAME=VALUE")
        values[name.strip()] = _list_or_text(name.strip(), value)
    return values


def _list_or_text(name: str, value: str) -> Any:
    if not value.lstrip().startswith("["):
        return value
    try:
        found = json.loads(value)
    except ValueError as exc:
        raise InputError(f"--param {name}: a list is written as JSON, e.g. '[\"a\",\"b\"]' ({exc})") from None
    return found


def _from_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PARAM_FILE + 1)
    except OSError as exc:
        raise InputError(f"--param-file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PARAM_FILE:
        raise InputError(f"--param-file {path}: larger than {MAX_PARAM_FILE:,} bytes")
    try:
        found, _ = load_yaml(data, f"--param-file {path}")
    except DagInvalid as exc:
        raise InputError(str(exc)) from None
    if not isinstance(found, dict) or not all(isinstance(k, str) for k in found):
        raise InputError(f"--param-file {path}: expected a mapping of parameter names to values")
    return found
