#!/bin/sh
# The PostgreSQL standby container (compose.yaml): on first start, copy the primary with
# `pg_basebackup -R` (writes standby.signal and primary_conninfo) from the slot `standby1`, then run
# as a hot standby named standby1 — the name the primary's synchronous_standby_names waits for.
# After a failover, promote it with `pg_ctl promote` (README "Hub high availability").
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h "$PRIMARY_HOST" -p 5432 -U "$POSTGRES_USER"; do sleep 1; done
  PGPASSWORD="$POSTGRES_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -p 5432 -U "$POSTGRES_USER" \
    -D "$PGDATA" -R -X stream -S standby1 --checkpoint=fast
  # the standby names no synchronous standby of its own: once promoted it must not wait for one
  printf "cluster_name = 'standby1'\nsynchronous_standby_names = ''\n" >> "$PGDATA/postgresql.auto.conf"
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on
