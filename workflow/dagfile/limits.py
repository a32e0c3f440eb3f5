"""Limits on DAG files, enforced before anything runs.

Each limit keeps a bad or hostile file from exhausting memory or time, or from
producing names that the stores and the Task Runner would refuse later:

- `MAX_FILE_BYTES` (1 MiB): checked on the raw bytes before any parsing; sources
  read at most one byte more than this.
- `MAX_STEPS` (5,000): steps per DAG.
- `MAX_ID_LENGTH` (128) and `ID_CHARACTERS`: step ids become document ids and job
  names, so they are short and use only letters, digits, '.', '_' and '-'.
- `MAX_YAML_NODES` (200,000): YAML nodes counted with aliases expanded (a node
  reached through N aliases counts N times), so an alias bomb ("billion laughs")
  is refused while the document is composed, before any Python object is built.
- `MAX_EXPANDED_BYTES` (4 MiB): scalar text counted with aliases expanded, so an
  alias to one long string cannot make the DAG exhaust memory.
- `MAX_NESTING_DEPTH` (50): mapping/list nesting, also counted through aliases.
- `MAX_REPORTED_PROBLEMS` (500) and `MAX_REPORTED_CYCLES` (20): a refusal lists at
  most this many problems / dependency cycles, then says how many more there are.
"""

from __future__ import annotations

from typing import Final

MAX_FILE_BYTES: Final = 1_048_576
"""Largest DAG file accepted, in bytes (1 MiB)."""

MAX_STEPS: Final = 5_000
"""Most steps in one DAG."""

MAX_ID_LENGTH: Final = 128
"""Longest step id, in characters."""

ID_CHARACTERS: Final = "A-Za-z0-9._-"
"""The characters a step id may use, as a regular-expression character class body."""

MAX_YAML_NODES: Final = 200_000
"""Most YAML nodes in a file, counting every use of an alias as a full copy."""

MAX_EXPANDED_BYTES: Final = 4 * 1_048_576
"""Most characters of scalar text in a file, counting every use of an alias as a full copy."""

MAX_NESTING_DEPTH: Final = 50
"""Deepest nesting of mappings and lists, counting through aliases."""

MAX_REPORTED_PROBLEMS: Final = 500
"""Most problems listed in one refusal; the rest are counted, not listed."""

MAX_REPORTED_CYCLES: Final = 20
"""Most dependency cycles reported for one DAG."""
