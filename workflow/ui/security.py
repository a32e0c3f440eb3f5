"""Guards of the pages: a token tied to the run page for each action (HMAC of the run id and
the time the page was made), a same-origin check on every POST, and the response headers
(a Content-Security-Policy that allows no inline script, no framing, no sniffing)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

TOKEN_TTL = 12 * 3600.0  # seconds a page's action token stays valid
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class Guard:
    """Issues and checks the action tokens of run pages, and checks the origin of a POST.
    `origins` lists other origins the pages are reached through (a proxy's, say)."""

    def __init__(self, secret: bytes, origins: Collection[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._origins = {urlsplit(o).netloc or o for o in origins}
        self._clock = clock

    def token(self, run_id: str) -> str:
        issued = str(int(self._clock()))
        return f"{issued}.{self._mac(run_id, issued)}"

    def valid(self, run_id: str, token: str) -> bool:
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or self._clock() - int(issued) > TOKEN_TTL:
            return False
        return hmac.compare_digest(mac, self._mac(run_id, issued))

    def same_origin(self, request: Request) -> bool:
        """True when the browser says the request comes from these pages: its Origin (or
        else Referer) names this host, or a listed origin; refused when it says cross-site."""
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("Origin") or request.headers.get("Referer")
        if origin is None:
            return True  # not a browser (browsers send Origin on every POST): the token decides
        netloc = urlsplit(origin).netloc
        return netloc == request.host or netloc in self._origins

    def _mac(self, run_id: str, issued: str) -> str:
        return hmac.new(self._secret, f"{run_id}|{issued}".encode(), hashlib.sha256).hexdigest()


def secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    return response
