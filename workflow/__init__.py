"""Event-driven executor for DAGs of containerized jobs run by a Task Runner."""
