"""DAG files the command line reads: local paths and `file://` URLs, besides `gs://`.

Not shipped with the Cloud Functions, which read `gs://` objects only. Failures are
project errors, as for `DagSources`: `DagNotFound` (missing, a directory, permission
denied, a malformed URL) or `DagInvalid` (a file over `MAX_FILE_BYTES`, refused before
it is read in full).
"""

from __future__ import annotations

import os
import re
import stat
from urllib.parse import unquote, urlsplit

from ..dagfile.limits import MAX_FILE_BYTES
from ..dagfile.load import oversize_problem
from ..errors import DagInvalid, DagNotFound
from .dag_sources import DagSources

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class LocalDags(DagSources):
    """`DagSources` that also reads local paths and `file://` URLs."""

    def read_bytes(self, path: str) -> tuple[bytes, str]:
        match = _SCHEME.match(path)
        scheme = match.group(1).lower() if match else ""
        if scheme == "gs":
            return super().read_bytes(path)
        if scheme == "file":
            return _read_local(path, _file_url_path(path)), path
        if scheme:
            raise DagNotFound(f"{path}: unsupported scheme {scheme!r}; use a local path, file:// or gs://")
        if not path:
            raise DagNotFound("no DAG path given")
        return _read_local(path, path), path


def _file_url_path(url: str) -> str:
    """The local path of a `file://` URL (host empty or localhost; %-escapes decoded)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DagNotFound(f"{url}: file:// URLs must name a local file (host {parts.netloc!r} is not local)")
    if not parts.path:
        raise DagNotFound(f"{url}: no file path in the URL")
    return unquote(parts.path)


def _read_local(label: str, fs_path: str) -> bytes:
    """The bytes of a local file; a regular file over the limit is refused before reading."""
    try:
        with open(fs_path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
                raise DagInvalid(label, [oversize_problem(info.st_size)])
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise DagNotFound(f"{label}: no such file") from exc
    except IsADirectoryError as exc:
        raise DagNotFound(f"{label}: is a directory, not a DAG file") from exc
    except PermissionError as exc:
        raise DagNotFound(f"{label}: permission denied") from exc
    except OSError as exc:
        raise DagNotFound(f"{label}: cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise DagInvalid(label, [oversize_problem(None)])
    return data
