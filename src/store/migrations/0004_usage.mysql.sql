-- Client budgets: tokens and micro-dollars per period (0: none), and the period.
ALTER TABLE client_keys ADD COLUMN budget_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE client_keys ADD COLUMN budget_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE client_keys ADD COLUMN budget_period VARCHAR(8) NOT NULL DEFAULT 'month';
-- Usage per hour, client, model and key group, costs in micro-dollars.
CREATE TABLE IF NOT EXISTS usage_hourly (
    hour_ms BIGINT NOT NULL,
    client VARCHAR(64) NOT NULL,
    model VARCHAR(128) NOT NULL,
    key_group VARCHAR(128) NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    thinking_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (hour_ms, client, model, key_group)
);
CREATE INDEX usage_hourly_client ON usage_hourly (client, hour_ms)
