"""Limits on DAG files, so that no file exhausts memory or time or yields names the stores and the
Task Runner refuse. "With aliases expanded" counts each use of a YAML alias as a full copy."""

from typing import Final

from ..model.dag import RETRY_DELAY_CAP

MAX_FILE_BYTES: Final = 1_048_576  # bytes in a file, checked before parsing; sources read at most one more
MAX_STEPS: Final = 5_000  # steps in one DAG; also the highest maxParallel
MAX_ID_LENGTH: Final = 128  # characters in a step id (ids become document ids and job names)
ID_CHARACTERS: Final = "A-Za-z0-9._-"  # the characters of a step id, as a regular-expression class body
MAX_YAML_NODES: Final = 200_000  # YAML nodes in a file, with aliases expanded
MAX_EXPANDED_BYTES: Final = 4 * 1_048_576  # characters of scalar text in a file, with aliases expanded
MAX_NESTING_DEPTH: Final = 50  # nesting of mappings and lists, with aliases expanded
MAX_REPORTED_PROBLEMS: Final = 500  # problems listed in one refusal; the rest are counted, not listed
MAX_REPORTED_CYCLES: Final = 20  # dependency cycles reported for one DAG
NUMBER_RANGES: Final = {  # keys taking a number: (integers only, lowest integer or number to exceed, highest)
    "retries": (True, 0, 20),  # new jobs for one step after its first
    "retryDelaySec": (False, 0, RETRY_DELAY_CAP),  # seconds before a step's first retry
    "timeoutSec": (False, 0, 30 * 86_400),  # seconds in a step's or the run's timeout (30 days)
    "maxParallel": (True, 1, MAX_STEPS),  # jobs of one run in flight at once
}
