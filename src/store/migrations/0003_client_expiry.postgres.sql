-- Client keys: when each expires, when an operator disabled it (Unix milliseconds),
-- and its tokens per minute (0: no limit).
ALTER TABLE client_keys ADD COLUMN expires_ms BIGINT NULL;
ALTER TABLE client_keys ADD COLUMN disabled_ms BIGINT NULL;
ALTER TABLE client_keys ADD COLUMN tpm_limit BIGINT NOT NULL DEFAULT 0;
