//! The `gemgate` command.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

// Many small allocations per request (headers, bodies, futures): mimalloc
// serves them faster than glibc's malloc (see the `mimalloc` feature in
// Cargo.toml for the measurement). Built with `no_thp`: with transparent huge
// pages, its arenas held 2 MB pages and an idle gemgate 58 MB instead of 27.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// gemgate: many Gemini API keys behind one endpoint.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The config file (default: ./config.toml when it exists).
    #[arg(long, short, env = "GEMGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Run with a built-in fake of Google's API and demo keys: no real keys needed.
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Validate the config and the key files, then exit (non-zero when broken).
    Check,
    /// Work with keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Work with policy scripts.
    Policy {
        #[command(subcommand)]
        action: PolicyCommand,
    },
    /// Work with the store.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// Ask a running gemgate whether it is up (for container health checks).
    Health {
        /// The health URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Check keys against the upstream (a cheap models call each) and print a
    /// table; exits 1 when any key is dead.
    Verify {
        /// A key file; default: every file of the keys folder.
        file: Option<PathBuf>,
        /// Keys checked at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every table of the configured store (or `--from`) into another,
    /// empty database, e.g. `gemgate store migrate --to postgres://user@host/db`.
    /// Stop gemgate first: rows written meanwhile would not be copied.
    Migrate {
        /// The database to copy into (`postgres://`, `mysql://` or `sqlite:`).
        #[arg(long)]
        to: String,
        /// The database to copy from (default: the config's store).
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Show the decision a script makes for one outcome, e.g.
    /// `gemgate policy test policies/default.rhai --case '{"status": 429}'`.
    Test {
        /// The rhai script.
        file: PathBuf,
        /// The outcome as JSON: status, google_status, reason, quota_id,
        /// retry_delay_secs, kind, model, attempt, bytes_sent, streaming,
        /// key_group, consecutive_failures, recent_failures.
        #[arg(long)]
        case: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config_path = cli.config.clone().or_else(|| {
        let default = PathBuf::from("config.toml");
        default.is_file().then_some(default)
    });
    match &cli.command {
        Some(Command::Check) => std::process::exit(check(config_path.as_deref())),
        Some(Command::Health { url }) => std::process::exit(health(url)),
        Some(Command::Policy { action: PolicyCommand::Test { file, case } }) => {
            std::process::exit(policy_test(config_path.as_deref(), file, case))
        }
        _ => {}
    }
    let loaded = gemgate::config::load(config_path.as_deref())?;
    init_logging(&loaded.config.log);
    if let Some(Command::Keys { action: KeysCommand::Verify { file, concurrency } }) = &cli.command {
        let runtime = tokio::runtime::Runtime::new()?;
        std::process::exit(runtime.block_on(verify_keys(&loaded, file.as_deref(), *concurrency)));
    }
    if let Some(Command::Store { action: StoreCommand::Migrate { to, from } }) = &cli.command {
        let from = from.clone().unwrap_or_else(|| loaded.database_url());
        let runtime = tokio::runtime::Runtime::new()?;
        std::process::exit(runtime.block_on(migrate_store(&from, to)));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        if cli.demo {
            return gemgate::demo::run(loaded).await;
        }
        serve(loaded).await
    })
}

/// Logging as `[log]` says; RUST_LOG, when set, chooses the levels.
fn init_logging(config: &gemgate::config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.format {
        gemgate::config::LogFormat::Json => builder.json().with_current_span(true).init(),
        gemgate::config::LogFormat::Text => builder.init(),
    }
}

async fn serve(loaded: gemgate::config::LoadedConfig) -> anyhow::Result<()> {
    let grace = loaded.config.server.shutdown_grace_secs;
    let app = gemgate::app::start(loaded).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: finishing requests in flight (up to {grace} s; a second signal exits at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
    app.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// `gemgate store migrate`: copies one store into another, empty one.
async fn migrate_store(from: &str, to: &str) -> i32 {
    use gemgate::store::{Store, redact_url};
    let (source, target) = match (Store::open(from).await, Store::open(to).await) {
        (Ok(source), Ok(target)) => (source, target),
        (Err(err), _) => {
            eprintln!("opening {}: {err}", redact_url(from));
            return 2;
        }
        (_, Err(err)) => {
            eprintln!("opening {}: {err}", redact_url(to));
            return 2;
        }
    };
    match source.copy_into(&target).await {
        Ok(copied) => {
            for (table, rows) in copied {
                println!("{table}: {rows} rows");
            }
            println!("copied {} into {}", redact_url(from), redact_url(to));
            0
        }
        Err(err) => {
            eprintln!("{err}");
            1
        }
    }
}

/// `gemgate policy test`: prints the script's decision and the built-in one.
fn policy_test(config_path: Option<&std::path::Path>, file: &std::path::Path, case: &str) -> i32 {
    use gemgate::policy::case;
    let config = gemgate::config::load(config_path).map(|l| l.config).unwrap_or_default();
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("{}: cannot read the script: {err}", file.display());
            return 2;
        }
    };
    let case: serde_json::Value = match serde_json::from_str(case) {
        Ok(case) => case,
        Err(err) => {
            eprintln!("case: {err}");
            return 2;
        }
    };
    match case::run_case(&file.display().to_string(), &source, &case, &config) {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            if report["script_faults"].as_u64().unwrap_or(0) > 0 { 1 } else { 0 }
        }
        Err(err) => {
            eprintln!("{err}");
            2
        }
    }
}

/// `gemgate keys verify`: one line per key, masked, with its verdict.
async fn verify_keys(
    loaded: &gemgate::config::LoadedConfig,
    file: Option<&std::path::Path>,
    concurrency: usize,
) -> i32 {
    use futures_util::StreamExt;
    use gemgate::key_state::ScanVerdict;
    let allow = loaded.config.keys.allow_nonstandard;
    let set = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut set = gemgate::keys::KeySet::default();
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            gemgate::keys::parse_key_file(&name, &text, allow, &mut Default::default(), &mut set);
            set
        }
        None => gemgate::keys::load_key_dir(&loaded.keys_dir(), allow).unwrap_or_default(),
    };
    for warning in &set.warnings {
        eprintln!("skipped {warning}");
    }
    let upstream = match gemgate::upstream::UpstreamClient::new(&loaded.config.upstream) {
        Ok(upstream) => upstream,
        Err(err) => {
            eprintln!("upstream client: {err}");
            return 2;
        }
    };
    // Keys are checked through the proxies they are pinned to, as when serving.
    if let Some(file) = loaded.proxies_file()
        && let Err(message) = gemgate::watch::apply_proxies_file(&upstream, &file)
    {
        eprintln!("{message}");
    }
    println!("{:<14} {:<12} {:<10} verdict", "fingerprint", "key", "group");
    let verdicts: Vec<_> = futures_util::stream::iter(set.records)
        .map(|record| {
            let upstream = upstream.clone();
            async move {
                let verdict = upstream.check_key(&record).await;
                (record, verdict)
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut dead = 0;
    for (record, verdict) in &verdicts {
        let text = match verdict {
            ScanVerdict::Alive => "alive".to_string(),
            ScanVerdict::Dead(reason) => {
                dead += 1;
                format!("dead ({})", reason.as_str())
            }
            ScanVerdict::Unknown => "unknown (no clear answer)".to_string(),
        };
        println!(
            "{:<14} {:<12} {:<10} {text}",
            record.fingerprint.to_string(),
            record.key.masked(),
            record.group.to_string()
        );
    }
    println!(
        "{} keys: {} alive, {dead} dead",
        verdicts.len(),
        verdicts.iter().filter(|(_, v)| *v == ScanVerdict::Alive).count()
    );
    i32::from(dead > 0)
}

/// `gemgate health`: 0 when the URL answers 2xx within 3 seconds.
fn health(url: &str) -> i32 {
    gemgate::upstream::install_crypto_provider();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return 1 };
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build();
        match client {
            Ok(client) => match client.get(url).send().await {
                Ok(response) if response.status().is_success() => 0,
                Ok(response) => {
                    eprintln!("unhealthy: {}", response.status());
                    1
                }
                Err(err) => {
                    eprintln!("unreachable: {err}");
                    1
                }
            },
            Err(_) => 1,
        }
    })
}

/// `gemgate check`: 0 when the config and every key file line are fine,
/// 1 when key files have bad lines, 2 when the config is broken.
fn check(config_path: Option<&std::path::Path>) -> i32 {
    let loaded = match gemgate::config::load(config_path) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("config: {err}");
            return 2;
        }
    };
    let source = loaded.file.as_ref().map_or("defaults and environment".to_string(), |f| f.display().to_string());
    println!("config: ok ({source})");
    let dir = loaded.keys_dir();
    match gemgate::keys::load_key_dir(&dir, loaded.config.keys.allow_nonstandard) {
        Ok(keys) => {
            for warning in &keys.warnings {
                eprintln!("keys: {}: {warning}", dir.display());
            }
            println!("keys: {} usable in {} ({} duplicate lines)", keys.records.len(), dir.display(), keys.duplicates);
            if keys.warnings.is_empty() { 0 } else { 1 }
        }
        Err(err) => {
            eprintln!("keys: cannot read {}: {err}", dir.display());
            1
        }
    }
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
