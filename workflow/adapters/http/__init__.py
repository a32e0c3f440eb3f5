"""The Task Runner over HTTP, and the bearer tokens it needs."""
