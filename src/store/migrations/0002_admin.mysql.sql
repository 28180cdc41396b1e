CREATE TABLE IF NOT EXISTS client_keys (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    key_hash VARCHAR(64) NOT NULL UNIQUE,
    key_hint VARCHAR(16) NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT NULL,
    rpm_limit BIGINT NOT NULL,
    rpd_limit BIGINT NOT NULL,
    allowed_models TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS error_log (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    client VARCHAR(64) NOT NULL,
    route VARCHAR(32) NOT NULL,
    model VARCHAR(128) NOT NULL,
    key_fp VARCHAR(32) NULL,
    attempt INT NOT NULL,
    http_status INT NOT NULL,
    google_status VARCHAR(64) NOT NULL,
    reason VARCHAR(128) NULL,
    kind VARCHAR(32) NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX error_log_at ON error_log (at_ms)
