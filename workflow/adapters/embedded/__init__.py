"""The embedded runtime: SQLite state store and in-process bus."""
