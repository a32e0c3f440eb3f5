"""The run pages: a Flask app (`create_app`) over the store's roles and an actions callable,
its templates and static files (the graph layout library vendored under `static/vendor/`)."""

from .app import create_app

__all__ = ["create_app"]
