-- The application role the lab's DATABASE_URL uses. Not a superuser, so connection exhaustion leaves the
-- superuser's reserved slots free for diagnosis, as on a managed database.
CREATE ROLE synap LOGIN PASSWORD 'lab-db-pass-7c41';
-- What the runbook's mitigations need: see every session, signal other sessions, raise max_connections.
GRANT pg_read_all_stats, pg_signal_backend TO synap;
GRANT ALTER SYSTEM ON PARAMETER max_connections TO synap;
CREATE DATABASE synap OWNER synap;
-- postgres_exporter's role. A superuser in the lab only, so that its reserved slots keep it connected while the
-- application role exhausts max_connections; in production give it pg_monitor and SELECT on proposals.
CREATE ROLE synap_monitor LOGIN SUPERUSER;
