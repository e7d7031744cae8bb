-- +goose Up
-- Agent self-upgrades (update_agent): the latest upgrade of each agent.
-- status: in_progress (its update_agent command is pending or sent),
-- succeeded, failed or cancelled, settled from the command's outcome.
-- auto_blocked: a failed upgrade stops automatic upgrades of the agent
-- (min_agent_version) until an admin retries it; failure_reason says why.
-- triggered_by: manual (an admin), auto (the min_agent_version job) or
-- retry; the job's rate limit counts the auto rows requested recently.
CREATE TABLE agent_upgrades (
    agent_id       TEXT PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    command_id     TEXT,
    from_version   TEXT NOT NULL DEFAULT '',
    target_version TEXT NOT NULL,
    rollback       INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed', 'cancelled')),
    failure_reason TEXT NOT NULL DEFAULT '',
    auto_blocked   INTEGER NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    triggered_by   TEXT NOT NULL CHECK (triggered_by IN ('manual', 'auto', 'retry')),
    requested_by   TEXT NOT NULL DEFAULT '',
    requested_at   DATETIME NOT NULL,
    finished_at    DATETIME,
    updated_at     DATETIME NOT NULL
);
CREATE INDEX agent_upgrades_status ON agent_upgrades (status);
CREATE INDEX agent_upgrades_command ON agent_upgrades (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX agent_upgrades_auto ON agent_upgrades (triggered_by, requested_at);
-- The job groups agents by platform and reported version.
CREATE INDEX agents_platform_version ON agents (os_type, os_arch, agent_version);

-- +goose Down
DROP INDEX agents_platform_version;
DROP TABLE agent_upgrades;
