-- Requests per minute, client, model, key group and status, with tokens and
-- a latency histogram (lat_0 to lat_13, bounds in src/store/minutes.rs): the
-- stats and charts read these, so the request rows can be sampled and kept
-- for a shorter time while the figures stay whole.
CREATE TABLE IF NOT EXISTS request_minutes (
    minute_ms BIGINT NOT NULL,
    client VARCHAR(64) NOT NULL,
    model VARCHAR(128) NOT NULL,
    key_group VARCHAR(128) NOT NULL,
    status INT NOT NULL,
    requests BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    latency_max_ms BIGINT NOT NULL,
    lat_0 BIGINT NOT NULL,
    lat_1 BIGINT NOT NULL,
    lat_2 BIGINT NOT NULL,
    lat_3 BIGINT NOT NULL,
    lat_4 BIGINT NOT NULL,
    lat_5 BIGINT NOT NULL,
    lat_6 BIGINT NOT NULL,
    lat_7 BIGINT NOT NULL,
    lat_8 BIGINT NOT NULL,
    lat_9 BIGINT NOT NULL,
    lat_10 BIGINT NOT NULL,
    lat_11 BIGINT NOT NULL,
    lat_12 BIGINT NOT NULL,
    lat_13 BIGINT NOT NULL,
    PRIMARY KEY (minute_ms, client, model, key_group, status)
)
