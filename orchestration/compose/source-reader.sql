-- The read-only role the platform reads the shop's source database with (LAKEHOUSE_SOURCE__USER):
-- SELECT on the tables, those there now and those the owner creates later, and nothing else.
-- Run by psql against the source database (compose: init-source-reader.sh; the end-to-end tests):
--   psql -v ON_ERROR_STOP=1 -v reader_password=... -v owner=<role creating the tables> -f source-reader.sql
CREATE ROLE lakehouse_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE :"DBNAME" TO lakehouse_reader;
GRANT USAGE ON SCHEMA public TO lakehouse_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO lakehouse_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE ON SCHEMAS TO lakehouse_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT SELECT ON TABLES TO lakehouse_reader;
