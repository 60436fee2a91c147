-- The catalogue lives beside Airflow's metadata on the same server, in its own database
-- (both use Alembic: one database each keeps their version tables apart).
CREATE DATABASE songmill;
