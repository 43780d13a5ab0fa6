#!/bin/sh
# Runs once in the PostgreSQL primary container (docker-entrypoint-initdb.d, compose.yaml): lets the
# standby connect for replication and keeps a physical replication slot for it, so the primary
# holds WAL the standby has not received yet (README "Hub high availability").
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "SELECT pg_create_physical_replication_slot('standby1') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'standby1')"
