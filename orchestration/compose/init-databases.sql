-- Databases beside the source `shop` (created by POSTGRES_DB): the Iceberg catalog, Airflow, Marquez.
CREATE DATABASE iceberg_catalog;
CREATE DATABASE airflow;
CREATE DATABASE marquez;
