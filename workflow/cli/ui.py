"""`ui`: serve the run pages (runs, a run's graph, timeline and steps, and its actions)
from the embedded store (`--db`) or the cloud runtime (`--cloud`), until Ctrl-C."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from werkzeug.serving import make_server

from ..bootstrap.cloud_pages import cloud_ui
from ..bootstrap.ui import embedded_ui
from ..ui import create_app
from .options import DEFAULT_DB, Parser, add_cloud, add_db, parsed
from .output import EXIT_OK


def ui(argv: Sequence[str], out: TextIO) -> int:
    p = Parser("ui",
               description="Serve the run pages until Ctrl-C: the runs, each run's graph, timeline and steps, "
                           "and its actions (cancel, rerun, resume). Binds loopback by default.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s; 0 picks a free one)")
    add_db(p)
    add_cloud(p)
    args = parsed(p, argv)
    if args.cloud:
        rt = cloud_ui(args.project, args.database)
        where = rt.where
    else:
        rt = embedded_ui(args.db)
        where = "" if args.db == DEFAULT_DB else f"--db {args.db}"
    try:
        app = create_app(rt.runs, rt.steps, rt.pages, rt.act, where=where)
        server = make_server(args.host, args.port, app, threaded=True)
        print(f"run pages at http://{args.host}:{server.port}/ (Ctrl-C stops)", file=out, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return EXIT_OK
    finally:
        rt.close()
