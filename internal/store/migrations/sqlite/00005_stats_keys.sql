-- +goose Up
-- Daily dashboard figures (GET /api/v1/stats/trends), one row per UTC day,
-- kind and key: kind 'pending' (key a severity), 'pending_type' (key a
-- package type), 'installed' and 'failed' (key ''). The snapshot job
-- upserts today's rows every hour, so re-running a day replaces them.
CREATE TABLE stats_daily (
    day   TEXT NOT NULL,
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (day, kind, key)
);
-- Installs and failures of a time range are counted from the history by time.
CREATE INDEX update_history_at ON update_history (at);
-- Key rotation: the active key and the retiring keys are looked up by status.
CREATE INDEX signing_keys_status ON signing_keys (status, created_at);

-- +goose Down
DROP INDEX signing_keys_status;
DROP INDEX update_history_at;
DROP TABLE stats_daily;
