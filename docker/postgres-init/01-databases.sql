-- One PostgreSQL server, three databases. Runs once, as POSTGRES_USER, when the data volume is
-- empty (docker-entrypoint-initdb.d); recreate the `postgres-data` volume to run it again.
--   airflow  Airflow metadata (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)
--   mlflow   MLflow tracking and model registry (MLFLOW_BACKEND_STORE_URI)
--   source   source tables for Postgres-sourced models (AIRFLOW_CONN_POSTGRES_SOURCE)
-- \gexec keeps this idempotent: POSTGRES_USER may itself be named like one of these, in which
-- case the image's entrypoint has already created that database.
SELECT 'CREATE DATABASE airflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow')\gexec
SELECT 'CREATE DATABASE mlflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')\gexec
SELECT 'CREATE DATABASE source' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'source')\gexec
