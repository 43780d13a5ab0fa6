"""``python -m sync.hub --database-url URL [--host H] [--port P]`` runs the hub with uvicorn.

A stand-in for ``anpi hub serve`` used by the process tests and the benchmark, so they do
not depend on the main CLI being wired.
"""
from __future__ import annotations

import argparse

from sync.hub.server import serve
from sync.settings import SyncSettings


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m sync.hub")
    p.add_argument("--database-url", default=SyncSettings.from_env().hub_database_url)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args()
    if not a.database_url:
        p.error("--database-url or ANPI_HUB_DATABASE_URL is required")
    serve(a.database_url, host=a.host, port=a.port, workers=a.workers, log_level=a.log_level)


if __name__ == "__main__":
    main()
