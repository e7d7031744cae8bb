-- +goose Up
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL DEFAULT 'admin',
    created_at          DATETIME NOT NULL,
    password_changed_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- Dashboard sessions and long-lived API tokens: only the SHA-256 of the token is kept.
CREATE TABLE user_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    name         TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   DATETIME NOT NULL,
    expires_at   DATETIME,
    last_used_at DATETIME,
    revoked_at   DATETIME,
    created_ip   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX user_tokens_user ON user_tokens (user_id, kind);

CREATE TABLE registration_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    note       TEXT NOT NULL DEFAULT '',
    seats      INTEGER NOT NULL CHECK (seats > 0),
    seats_used INTEGER NOT NULL DEFAULT 0 CHECK (seats_used >= 0 AND seats_used <= seats),
    created_by TEXT NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    revoked_at DATETIME
);
CREATE INDEX registration_tokens_created ON registration_tokens (created_at, id);

CREATE TABLE agents (
    id                        TEXT PRIMARY KEY,
    hostname                  TEXT NOT NULL,
    os_type                   TEXT NOT NULL,
    os_version                TEXT NOT NULL DEFAULT '',
    os_arch                   TEXT NOT NULL DEFAULT '',
    agent_version             TEXT NOT NULL DEFAULT '',
    machine_id                TEXT NOT NULL UNIQUE,
    token_generation          INTEGER NOT NULL DEFAULT 1,
    check_in_interval_seconds INTEGER NOT NULL DEFAULT 300,
    registration_token_id     TEXT,
    registered_at             DATETIME NOT NULL,
    last_seen_at              DATETIME,
    offline_after             DATETIME,
    system_info               TEXT,
    system_info_at            DATETIME
);
CREATE INDEX agents_hostname ON agents (lower(hostname), id);
CREATE INDEX agents_os ON agents (os_type);
CREATE INDEX agents_offline_after ON agents (offline_after);
CREATE INDEX agents_registered ON agents (registered_at, id);
CREATE INDEX agents_last_seen ON agents (last_seen_at, id);

CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL
);
CREATE INDEX refresh_tokens_agent ON refresh_tokens (agent_id);

CREATE TABLE signing_keys (
    key_id     TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL DEFAULT 'ed25519',
    public_key TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'retiring', 'retired')),
    created_at DATETIME NOT NULL,
    not_after  DATETIME
);

CREATE TABLE commands (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    params       TEXT NOT NULL,
    status       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    created_at   DATETIME NOT NULL,
    sent_at      DATETIME,
    finished_at  DATETIME,
    result       TEXT
);
CREATE INDEX commands_agent_status ON commands (agent_id, status, created_at);
CREATE UNIQUE INDEX commands_one_pending_per_type ON commands (agent_id, type) WHERE status = 'pending';

CREATE TABLE updates (
    id                TEXT PRIMARY KEY,
    agent_id          TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    package_type      TEXT NOT NULL,
    package_name      TEXT NOT NULL,
    current_version   TEXT NOT NULL DEFAULT '',
    available_version TEXT NOT NULL DEFAULT '',
    severity          TEXT NOT NULL DEFAULT 'unknown',
    source            TEXT NOT NULL DEFAULT '',
    cve_ids           TEXT NOT NULL DEFAULT '[]',
    size_bytes        INTEGER NOT NULL DEFAULT 0,
    requires_reboot   INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL DEFAULT 'pending',
    first_seen_at     DATETIME NOT NULL,
    last_seen_at      DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL,
    UNIQUE (agent_id, package_type, package_name)
);
CREATE INDEX updates_status ON updates (status, severity);

CREATE TABLE update_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    update_id   TEXT NOT NULL REFERENCES updates(id) ON DELETE CASCADE,
    from_status TEXT NOT NULL DEFAULT '',
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    at          DATETIME NOT NULL
);
CREATE INDEX update_history_update ON update_history (update_id, id);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at DATETIME NOT NULL
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          DATETIME NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL DEFAULT '',
    actor_name  TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL DEFAULT '',
    target_id   TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE settings;
DROP TABLE update_history;
DROP TABLE updates;
DROP TABLE commands;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE agents;
DROP TABLE registration_tokens;
DROP TABLE user_tokens;
DROP TABLE users;
