#!/bin/sh
# First start of the postgres service: the read-only role Airflow's tasks read the source with.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader_password="$SOURCE_READER_PASSWORD" -v owner="$POSTGRES_USER" -f /opt/lakehouse/source-reader.sql
