//! Versioned schema migrations, one SQL text per dialect and version. Applied
//! in order at start; the versions applied are kept in `gemgate_schema`.

use super::Dialect;

/// One step of the schema.
pub struct Migration {
    /// Version number, strictly increasing.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// SQL for SQLite, PostgreSQL and MySQL/MariaDB (statements split on `;`).
    pub sql: [&'static str; 3],
}

impl Migration {
    /// The statements for `dialect`.
    pub fn statements(&self, dialect: Dialect) -> impl Iterator<Item = &'static str> {
        let text = match dialect {
            Dialect::Sqlite => self.sql[0],
            Dialect::Postgres => self.sql[1],
            Dialect::MySql => self.sql[2],
        };
        text.split(';').map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "key state and request log",
        sql: [
            include_str!("migrations/0001_init.sqlite.sql"),
            include_str!("migrations/0001_init.postgres.sql"),
            include_str!("migrations/0001_init.mysql.sql"),
        ],
    },
    Migration {
        version: 2,
        description: "client keys and the error log",
        sql: [
            include_str!("migrations/0002_admin.sqlite.sql"),
            include_str!("migrations/0002_admin.postgres.sql"),
            include_str!("migrations/0002_admin.mysql.sql"),
        ],
    },
    Migration {
        version: 3,
        description: "client keys' expiry, disable and tokens per minute",
        sql: [
            include_str!("migrations/0003_client_expiry.sqlite.sql"),
            include_str!("migrations/0003_client_expiry.postgres.sql"),
            include_str!("migrations/0003_client_expiry.mysql.sql"),
        ],
    },
    Migration {
        version: 4,
        description: "client budgets and hourly usage",
        sql: [
            include_str!("migrations/0004_usage.sqlite.sql"),
            include_str!("migrations/0004_usage.postgres.sql"),
            include_str!("migrations/0004_usage.mysql.sql"),
        ],
    },
    Migration {
        version: 5,
        description: "request ids on request and error rows",
        sql: [
            include_str!("migrations/0005_request_ids.sqlite.sql"),
            include_str!("migrations/0005_request_ids.postgres.sql"),
            include_str!("migrations/0005_request_ids.mysql.sql"),
        ],
    },
    Migration {
        version: 6,
        description: "admin sessions",
        sql: [
            include_str!("migrations/0006_admin_sessions.sqlite.sql"),
            include_str!("migrations/0006_admin_sessions.postgres.sql"),
            include_str!("migrations/0006_admin_sessions.mysql.sql"),
        ],
    },
    Migration {
        version: 7,
        description: "request rollups per minute",
        sql: [
            include_str!("migrations/0007_request_minutes.sqlite.sql"),
            include_str!("migrations/0007_request_minutes.postgres.sql"),
            include_str!("migrations/0007_request_minutes.mysql.sql"),
        ],
    },
    Migration {
        version: 8,
        description: "responses kept for previous_response_id",
        sql: [
            include_str!("migrations/0008_responses.sqlite.sql"),
            include_str!("migrations/0008_responses.postgres.sql"),
            include_str!("migrations/0008_responses.mysql.sql"),
        ],
    },
];
