"""DAG files: `parse_dag(data, origin)` turns a file's bytes into a validated `Dag` or raises
`DagInvalid` listing every problem, each naming its step and key or line, within `limits`.
Reading a file from a path or URL is `workflow.adapters.dag_sources.DagSources.read`.

The format is the Go tool's (JSON works too, being YAML)::

    name: fork-join                 # optional
    maxParallel: 4                  # optional: at most this many jobs in flight at once (default: no limit)
    timeoutSec: 86400               # optional: steps still open after this are failed, the run ends FAILED
    defaults: {retries: 1}          # optional: retries, retryDelaySec, timeoutSec, runIf for steps without them
    steps:                          # required, non-empty
      - id: prepare                 # required, unique, [A-Za-z0-9._-], at most 128 characters
        description: fetch the data # optional
        dependsOn: []               # optional list of step ids
        task:                       # required; POST /job gets these fields when set
          name: prepare-job         # optional, defaults to the step id; sent as job_name
          imageUri: gcr.io/p/prep:1 # required unless engine is given
          engine: edge              # optional, sent as is
          url: https://h.a.run.app  # optional absolute http(s) URL, sent as is
          args: [--epochs, 3]       # optional: list, or mapping of key to value
          scaleTier: BASIC          # optional
          masterType: n1-standard-4 # optional
          labels: {team: ml}        # optional mapping of key to value
        retries: 2                  # optional, 0 to 20: new jobs after the job FAILED, was refused or timed out
        retryDelaySec: 60           # optional, over 0, at most 3600, default 10: doubles each retry, with jitter
        timeoutSec: 7200            # optional, seconds: the step's timeout (default WORKFLOW_STEP_TIMEOUT_SEC)
        runIf: allDone              # optional: allSucceeded (default) | allDone | anyFailed, of the dependencies

Scalars in `args` and `labels` are sent as written (`0.010`, `yes`, `1e3` stay so); elsewhere a
number, boolean or date for a string is refused. A null key is absent; object-building tags are refused.
Timeouts are at most 30 days; maxParallel is at most the step limit.
"""

from . import limits as limits
from .validate import parse_dag as parse_dag
