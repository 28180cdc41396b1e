CREATE TABLE IF NOT EXISTS key_state (
    fingerprint VARCHAR(32) NOT NULL PRIMARY KEY,
    disabled_reason VARCHAR(32) NULL,
    disabled_at_ms BIGINT NULL,
    cooldowns TEXT NOT NULL,
    requests BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    last_used_ms BIGINT NULL,
    last_error TEXT NULL,
    latency_ms_total BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    client VARCHAR(64) NOT NULL,
    route VARCHAR(32) NOT NULL,
    model VARCHAR(128) NOT NULL,
    key_fp VARCHAR(32) NULL,
    attempts INT NOT NULL,
    status INT NOT NULL,
    latency_ms BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    error TEXT NULL
);
CREATE INDEX request_log_at ON request_log (at_ms);
