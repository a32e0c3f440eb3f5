"""URLs as the executor compares them."""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, without path or userinfo; ValueError
    for a port that is not a number."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}"
