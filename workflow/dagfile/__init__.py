"""DAG files: bytes to a validated `Dag` (`parse_dag(data, origin)`); reading them from a
path or URL is `workflow.adapters.dag_sources.DagSources.read`.

The format is compatible with the existing Go tool's YAML files (JSON works too,
being YAML)::

    name: fork-join                  # optional
    steps:                           # required, non-empty
      - id: prepare                  # required, unique, [A-Za-z0-9._-], at most 128 characters
        description: fetch the data  # optional
        dependsOn: []                # optional list of step ids
        task:                        # required
          name: prepare-job          # optional, defaults to the step id ("job_name" in POST /job)
          imageUri: gcr.io/p/prep:1  # required unless engine is given
          engine: edge               # optional, passed to the Task Runner as is
          url: https://hello.a.run.app  # optional absolute http(s) URL, passed as is
          args: [--epochs, 3]        # optional: list, or mapping of key to value
          scaleTier: BASIC           # optional
          masterType: n1-standard-4  # optional
          labels: {team: ml}         # optional mapping of key to value

Scalars in `args` and `labels` are kept as the text written (`0.010`, `yes` and `1e3`
stay "0.010", "yes" and "1e3"), as the Go tool read them; elsewhere values YAML reads
as numbers, booleans or dates where strings are expected are refused. An optional
key set to null counts as absent. Only plain data is accepted: tags that would build
Python objects are refused.

`parse_dag` reports every problem of a file at once (`DagInvalid.problems`), each
naming its step and key or line, within `limits` (size, steps, id length, YAML
nodes, text and nesting with aliases expanded).
"""

from . import limits
from .validate import parse_dag

__all__ = ["limits", "parse_dag"]
