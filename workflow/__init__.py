"""Event-driven executor for DAGs of containerized jobs run by a Task Runner."""

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it here)
