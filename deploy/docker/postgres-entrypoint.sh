#!/bin/sh
# PostgreSQL for the compose stack, as the official image starts it: on an empty data folder,
# initdb with POSTGRES_USER / POSTGRES_PASSWORD, create POSTGRES_DB, run the scripts in
# /docker-entrypoint-initdb.d; then the server, listening on every address of the container
# (the compose network; only the api-server's port is published).
set -eu
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" "${POSTGRES_DB:=$POSTGRES_USER}"
PGDATA=/var/lib/postgresql/data
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
as_postgres() { su postgres -s /bin/sh -c "$*"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pgpass && chown postgres /tmp/pgpass
    as_postgres "initdb -D $PGDATA --username='$POSTGRES_USER' --pwfile=/tmp/pgpass --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --locale=C.UTF-8" >/dev/null
    rm -f /tmp/pgpass
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    as_postgres "pg_ctl -D $PGDATA -o '-c listen_addresses=' -w start" >/dev/null
    as_postgres "psql -v ON_ERROR_STOP=1 --username='$POSTGRES_USER' --dbname=postgres -c 'CREATE DATABASE \"$POSTGRES_DB\"'" >/dev/null
    for script in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$script" ] && as_postgres "psql -v ON_ERROR_STOP=1 --username='$POSTGRES_USER' --dbname='$POSTGRES_DB' -f '$script'" >/dev/null
    done
    as_postgres "pg_ctl -D $PGDATA -m fast -w stop" >/dev/null
fi
exec su postgres -s /bin/sh -c "exec postgres -D $PGDATA -c listen_addresses='*'"
