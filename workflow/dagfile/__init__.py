"""DAG files: `parse_dag(data, origin)` turns a file's bytes into a validated `Dag` or raises
`DagInvalid` listing every problem, each naming its step and key or line, within `limits`.
The format is the Go tool's, in YAML or JSON; docs/dag-format.md is the reference::

    name: fork-join                 # optional; so are maxParallel and timeoutSec (the run's)
    defaults: {retries: 1}          # optional: retries, retryDelaySec, timeoutSec, runIf for steps without them
    steps:                          # required, non-empty
      - id: prepare                 # required, unique, [A-Za-z0-9._-], at most 128 characters
        dependsOn: []               # optional list of step ids; description is optional too
        task:                       # required; also engine, url, scaleTier, masterType, labels; only those set are sent
          imageUri: gcr.io/p/prep:1 # required unless engine is given; name defaults to the step id
          args: [--epochs, 3]       # optional list or mapping; scalars in args and labels are sent as written
        retries: 2                  # optional, 0 to 20; so are retryDelaySec and timeoutSec (the step's)
        runIf: allDone              # optional: allSucceeded (default) | allDone | anyFailed
"""

from . import limits as limits
from .instance import RunContext as RunContext
from .instance import as_the_runs as as_the_runs
from .instance import instantiate as instantiate
from .validate import parse_dag as parse_dag
