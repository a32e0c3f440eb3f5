"""DAG files: read one from a path or URL, validate it, get a `Dag`.

The format is compatible with the existing Go tool's YAML files (JSON works too,
being YAML)::

    name: fork-join                  # optional
    steps:                           # required, non-empty
      - id: prepare                  # required, unique, [A-Za-z0-9._-], at most 128 characters
        description: fetch the data  # optional
        dependsOn: []                # optional list of step ids
        task:                        # required
          name: prepare-job          # optional, defaults to the step id
          imageUri: gcr.io/p/prep:1  # required
          args: ["--date", "2020"]   # optional: list of strings, or mapping string -> string
          scaleTier: BASIC           # optional
          masterType: n1-standard-4  # optional
          labels: {team: ml}         # optional mapping string -> string

An optional key set to null counts as absent. Values YAML reads as numbers,
booleans or dates where strings are expected are refused, not converted. Only
plain data is accepted: tags that would build Python objects are refused.

`parse_dag` reports every problem of a file at once (`DagInvalid.problems`),
each naming its step and key or line. Limits (see `workflow.dagfile.limits`):
files of at most `MAX_FILE_BYTES` (1 MiB), at most `MAX_STEPS` (5,000) steps,
ids of at most `MAX_ID_LENGTH` (128) characters, at most `MAX_YAML_NODES`
(200,000) YAML nodes counted with aliases expanded (alias bombs are refused
before objects are built), nesting at most `MAX_NESTING_DEPTH` (50) deep.
"""

from __future__ import annotations

from ..model.dag import Dag
from .limits import (
    ID_CHARACTERS,
    MAX_FILE_BYTES,
    MAX_ID_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_REPORTED_CYCLES,
    MAX_REPORTED_PROBLEMS,
    MAX_STEPS,
    MAX_YAML_NODES,
)
from .parse import parse_dag

__all__ = [
    "ID_CHARACTERS",
    "MAX_FILE_BYTES",
    "MAX_ID_LENGTH",
    "MAX_NESTING_DEPTH",
    "MAX_REPORTED_CYCLES",
    "MAX_REPORTED_PROBLEMS",
    "MAX_STEPS",
    "MAX_YAML_NODES",
    "parse_dag",
    "read_dag",
]


def read_dag(path: str) -> Dag:
    """Read and validate the DAG file at `path`: a local path, `file://` or `gs://` URL.

    Raises `DagNotFound` if it cannot be read, `DagInvalid` listing every problem.
    """
    # Imported here: the adapter itself imports this package.
    from ..adapters.dag_sources import read_dag_bytes

    data, origin = read_dag_bytes(path)
    return parse_dag(data, origin)
