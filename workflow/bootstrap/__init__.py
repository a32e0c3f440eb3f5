"""Builds the ports of a runtime (`cloud` for the Cloud Functions, `embedded` for the command
line) from injected or default adapters and binds them to the handlers: the only place that wires."""
