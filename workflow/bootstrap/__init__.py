"""Builds the ports of a runtime and binds them to the handlers; the only place that wires.

`workflow.bootstrap.cloud` for the Cloud Functions, `workflow.bootstrap.embedded` for one
machine (the command line). Each accepts injected adapters and builds only what is missing.
"""
