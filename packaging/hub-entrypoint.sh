#!/bin/sh
# Entrypoint of the hub container (Dockerfile). Configuration comes from the environment:
#   ANPI_HUB_DATABASE_URL  required: postgresql://USER:PASSWORD@HOST:5432/DB (SQLite is for one laptop, not a data center)
#   ANPI_HUB_HOST          listen address (default 0.0.0.0)
#   ANPI_HUB_PORT          listen port (default 8090)
#   ANPI_HUB_WORKERS       uvicorn worker processes (default 1)
#   ANPI_HUB_DATA_KEY / ANPI_HUB_DATA_KEY_FILE  optional: key that seals registry backups held at the hub
# Usage: (no arguments) serve the hub · `healthcheck` (Docker HEALTHCHECK) · any other command, e.g.
# `anpi hub enroll 第二中学校`, runs as given.
set -eu

HOST=${ANPI_HUB_HOST:-0.0.0.0}
PORT=${ANPI_HUB_PORT:-8090}
WORKERS=${ANPI_HUB_WORKERS:-1}

require_postgres_url() {
  url=${ANPI_HUB_DATABASE_URL:-}
  case "$url" in
    postgresql://?* | postgres://?* | postgresql+psycopg://?*) ;;
    "")
      echo "anpi hub: ANPI_HUB_DATABASE_URL is not set; refusing to start." >&2
      echo "  set it to the PostgreSQL database, e.g. postgresql://anpi:PASSWORD@db:5432/anpi (see compose.yaml)" >&2
      exit 78 ;;
    *)
      echo "anpi hub: ANPI_HUB_DATABASE_URL must be a PostgreSQL URL (postgresql://…); refusing to start." >&2
      echo "  the hub container keeps the data center's data in PostgreSQL, not in a file inside the container" >&2
      exit 78 ;;
  esac
}

case "${1:-serve}" in
  serve)
    require_postgres_url
    exec anpi hub serve --host "$HOST" --port "$PORT" --workers "$WORKERS" ;;
  healthcheck)
    # /healthz answers 200 without login and without personal data
    exec python -c 'import sys, urllib.request
try:
    ok = urllib.request.urlopen(sys.argv[1], timeout=4).status == 200
except OSError as exc:
    print(f"hub not healthy: {exc}", file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)' "http://127.0.0.1:${PORT}/healthz" ;;
  *)
    if [ "${1:-}" = anpi ] && [ "${2:-}" = hub ]; then
      require_postgres_url
    fi
    exec "$@" ;;
esac
