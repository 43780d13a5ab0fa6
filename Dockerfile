# syntax=docker/dockerfile:1
# The data-center hub (`anpi hub serve`) for PostgreSQL. Shelter laptops use the one-file binary
# (scripts/build-binary) instead. Run it with compose.yaml, or:
#   docker build -t anpi-hub .
#   docker run -e ANPI_HUB_DATABASE_URL=postgresql://anpi:PASSWORD@dbhost:5432/anpi -p 8090:8090 anpi-hub
# tests/packaging/test_dockerfile.py checks this file against scripts/test (Docker cannot run in CI).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with Anpi and its dependencies (wheels only, no compiler needed) ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/anpi
ENV PATH=/opt/anpi/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY app ./app
COPY matching ./matching
COPY sync ./sync
COPY fixtures ./fixtures
COPY kiosk_ui ./kiosk_ui
# The README's install command (scripts/test), without -e and without the test extra.
RUN python -m pip install -q --disable-pip-version-check .

# --- runtime: the same slim base, the virtualenv, an unprivileged user ---
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 anpi \
 && useradd --system --uid 10001 --gid anpi --home-dir /home/anpi --create-home --shell /usr/sbin/nologin anpi
COPY --from=builder /opt/anpi /opt/anpi
COPY --chmod=0755 packaging/hub-entrypoint.sh /usr/local/bin/anpi-hub-entrypoint
COPY LICENSE NOTICE /usr/share/doc/anpi/
ENV PATH=/opt/anpi/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ANPI_HUB_HOST=0.0.0.0 \
    ANPI_HUB_PORT=8090 \
    ANPI_HUB_WORKERS=1
# ANPI_HUB_DATABASE_URL has no default on purpose: the entrypoint refuses to start without it.
USER anpi:anpi
WORKDIR /home/anpi
EXPOSE 8090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["anpi-hub-entrypoint", "healthcheck"]
ENTRYPOINT ["anpi-hub-entrypoint"]
CMD ["serve"]
