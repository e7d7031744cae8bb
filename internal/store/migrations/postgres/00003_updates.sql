-- +goose Up
-- Updates (SPEC §7): scan state per agent and scanner, install outcomes on
-- each update, per-agent counts of open updates kept current in the
-- transactions that change them, and the agent's reboot flag.

-- One row per agent and scanner: the latest report and the latest success.
-- report_hash is the SHA-256 of the last full report's "updates" bytes, the
-- one a hash-only report must name; '' when none is accepted (after a
-- partial report, or once an install changed what the agent will report).
-- last_success_unix (Unix seconds, 0 = never) makes staleness an integer
-- comparison on both engines.
CREATE TABLE agent_scans (
    agent_id          TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    scanner           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error             TEXT NOT NULL DEFAULT '',
    scanned_at        TIMESTAMPTZ,
    last_report_at    TIMESTAMPTZ NOT NULL,
    last_success_at   TIMESTAMPTZ,
    last_success_unix BIGINT NOT NULL DEFAULT 0,
    report_hash       TEXT NOT NULL DEFAULT '',
    interval_seconds  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, scanner)
);

-- Open updates (pending, approved, needs_confirmation, failed) per agent,
-- status, package type and severity. Rebuilt for an agent in every
-- transaction that changes its updates.
CREATE TABLE agent_update_counts (
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    package_type TEXT NOT NULL,
    severity     TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (agent_id, status, package_type, severity)
);

ALTER TABLE agents ADD COLUMN reboot_required BOOLEAN NOT NULL DEFAULT FALSE;

-- severity_rank orders by urgency (critical 0 … unknown 4).
ALTER TABLE updates ADD COLUMN severity_rank INTEGER NOT NULL DEFAULT 4;
-- The install_updates or confirm_dependencies command that carries (or
-- last carried) the update.
ALTER TABLE updates ADD COLUMN command_id TEXT;
ALTER TABLE updates ADD COLUMN installed_version TEXT NOT NULL DEFAULT '';
-- The agent's message for the last install or dry run (bounded).
ALTER TABLE updates ADD COLUMN status_message TEXT NOT NULL DEFAULT '';
-- The extra packages a dry run found (JSON array), kept until confirmed.
ALTER TABLE updates ADD COLUMN extras JSONB;
ALTER TABLE updates ADD COLUMN status_changed_at TIMESTAMPTZ;

-- The list's default order (most urgent first, then by name), with and
-- without a status filter; updates_status_rank replaces updates_status.
-- (agent_id, package_type, package_name) is indexed by its UNIQUE constraint.
DROP INDEX updates_status;
CREATE INDEX updates_agent_status ON updates (agent_id, status);
CREATE INDEX updates_command ON updates (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX updates_rank ON updates (severity_rank, lower(package_name), id);
CREATE INDEX updates_status_rank ON updates (status, severity_rank, lower(package_name), id);

-- +goose Down
DROP INDEX updates_status_rank;
DROP INDEX updates_rank;
DROP INDEX updates_command;
DROP INDEX updates_agent_status;
CREATE INDEX updates_status ON updates (status, severity);
ALTER TABLE updates DROP COLUMN status_changed_at;
ALTER TABLE updates DROP COLUMN extras;
ALTER TABLE updates DROP COLUMN status_message;
ALTER TABLE updates DROP COLUMN installed_version;
ALTER TABLE updates DROP COLUMN command_id;
ALTER TABLE updates DROP COLUMN severity_rank;
ALTER TABLE agents DROP COLUMN reboot_required;
DROP TABLE agent_update_counts;
DROP TABLE agent_scans;
