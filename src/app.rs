//! Wires the service together: store, key files, pool, policy, upstream
//! client and HTTP server; and takes it down again in order.

use crate::api::{self, AppState, access::Access};
use crate::config::LoadedConfig;
use crate::dispatch::Dispatcher;
use crate::keys::load_key_dir;
use crate::policy::SharedPolicy;
use crate::pool::{PoolHandle, Scanner, SupervisorArgs};
use crate::secrets::load_or_generate;
use crate::store::{Store, StoreHandle};
use crate::upstream::UpstreamClient;
use crate::watch::{self, ReloadStatus, Reloader, Watch};
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A started gemgate.
pub struct RunningApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The key pool.
    pub pool: PoolHandle,
    /// The store.
    pub store: Store,
    /// The store's writer.
    pub store_writer: StoreHandle,
    /// The client key to use when gemgate generated one.
    pub generated_client_key: Option<String>,
    /// Reloads applied or rejected.
    pub reloads: Arc<ReloadStatus>,
    _watch: Option<Watch>,
    prober: Option<JoinHandle<()>>,
    _cluster: Option<crate::cluster::Cluster>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Starts gemgate with `loaded` config.
pub async fn start(loaded: LoadedConfig) -> anyhow::Result<RunningApp> {
    let config = &loaded.config;
    let database_url = loaded.database_url();
    let store = Store::open(&database_url)
        .await
        .with_context(|| format!("opening the store ({})", crate::store::redact_url(&database_url)))?;
    let persisted = store.load_key_states().await.context("loading key state")?;
    let store_writer = store.start_writer(
        Duration::from_millis(config.store.flush_interval_ms),
        config.store.batch_size,
        crate::store::Retention {
            log_days: config.store.log_retention_days,
            usage_days: config.store.usage_retention_days,
            minute_days: config.store.rollup_retention_days,
        },
    );
    store_writer.sample_successes(config.store.log_sample_successes);
    let accounting = Arc::new(crate::accounting::Accounting::new(config, store_writer.clone()));

    let keys_dir = loaded.keys_dir();
    let key_set = load_key_dir(&keys_dir, config.keys.allow_nonstandard)
        .with_context(|| format!("reading the keys folder {}", keys_dir.display()))?;
    for summary in crate::keys::summarize_warnings(&key_set.warnings) {
        tracing::warn!("key file {summary}");
    }

    let upstream = UpstreamClient::new(&config.upstream).context("building the upstream client")?;
    if let Some(file) = loaded.proxies_file() {
        // A bad file at start is said and skipped: the proxies of config.toml serve.
        match watch::apply_proxies_file(&upstream, &file) {
            Ok(count) => tracing::info!("{count} proxies from {}", file.display()),
            Err(message) => tracing::warn!("{message}"),
        }
    }
    let prober = start_prober(&upstream, config.upstream.probe_interval_secs);
    let policy = SharedPolicy::configured(&loaded).context("loading the policy script")?;
    let scanner = Arc::new(Scanner::new(upstream.clone(), policy.clone(), config.scan.concurrency));
    let key_count = key_set.records.len();
    let groups = group_counts(&key_set.records);
    let (sink, decisions, scan_gate) = match config.cluster.redis_url.is_empty() {
        true => (None, None, None),
        false => {
            let (sink, decisions) = crate::cluster::sink();
            (Some(sink), Some(decisions), Some(crate::cluster::scan_gate(&config.cluster)?))
        }
    };
    let pool = PoolHandle::start(SupervisorArgs {
        keys: key_set.records,
        persisted,
        strategy: config.pool.strategy,
        affinity_ttl: config.pool.affinity_ttl(),
        limits: config.models.clone(),
        store: store_writer.clone(),
        scanner,
        scan_interval: Duration::from_secs(config.scan.interval_secs),
        scan_on_start: config.scan.on_start,
        sink,
        scan_gate,
    })
    .await?;
    let cluster = match decisions {
        Some(decisions) => {
            let cluster =
                crate::cluster::Cluster::start(&config.cluster, config.pool.affinity_ttl(), pool.clone(), decisions)?;
            accounting.share_limits(cluster.limits.clone());
            tracing::info!("cluster: sharing key state through Redis (namespace {})", config.cluster.namespace);
            Some(cluster)
        }
        None => None,
    };

    let data_dir = loaded.data_dir();
    let mut generated_client_key = None;
    if config.auth.client_keys.is_empty() && !config.auth.open {
        let (key, created) = load_or_generate(&data_dir, "client-key").context("keeping the generated client key")?;
        let path = data_dir.join("client-key");
        if created {
            // The key goes to the terminal once, never into the log stream.
            eprintln!("gemgate: generated a client key (kept in {}): {key}", path.display());
            tracing::info!("no client key configured: generated one into {}", path.display());
        } else {
            tracing::info!("no client key configured: using the generated one in {}", path.display());
        }
        generated_client_key = Some(key);
    }
    if config.auth.open {
        tracing::warn!("auth.open = true: anyone who can reach gemgate can use its keys");
    }

    let dispatcher = Arc::new(Dispatcher {
        pool: pool.clone(),
        upstream: upstream.clone(),
        policy: policy.clone(),
        retry: arc_swap::ArcSwap::from_pointee(config.retry.clone()),
        stream_idle_timeout: config.upstream.stream_idle_timeout(),
        store: store_writer.clone(),
        metrics: Arc::new(crate::metrics::Metrics::default()),
        accounting: accounting.clone(),
    });
    let reloads = Arc::new(ReloadStatus::default());
    let admin_key = if config.auth.admin_key.is_empty() {
        let (key, created) = load_or_generate(&data_dir, "admin-key").context("keeping the generated admin key")?;
        let path = data_dir.join("admin-key");
        if created {
            eprintln!("gemgate: generated an admin key (kept in {}): {key}", path.display());
            tracing::info!("no admin key configured: generated one into {}", path.display());
        } else {
            tracing::info!("no admin key configured: the admin uses the generated one in {}", path.display());
        }
        key
    } else {
        config.auth.admin_key.clone()
    };
    let stored_clients = store.client_keys().await.context("loading client keys")?;
    let limits = crate::server::ServerLimits::from_config(&config.server)?;
    let limiter = crate::api::auth_limit::AuthLimiter::new(
        config.server.auth_failures_per_minute,
        limits.trusted_proxies.clone(),
    );
    let token = metrics_token(config, &admin_key);
    let access = Access::new(config, generated_client_key.clone(), stored_clients, token, limiter, accounting);
    let state: Arc<AppState> = Arc::new(AppState {
        dispatcher,
        access,
        max_body_bytes: config.server.max_body_bytes,
        models: Default::default(),
        responses: Default::default(),
        store: store.clone(),
        reloads: reloads.clone(),
        rules: arc_swap::ArcSwap::from_pointee(api::ServingRules::new(config)),
        cluster: cluster.as_ref().map(|c| c.link.clone()),
    });
    state.seed_budgets().await.context("reading what clients spent in their budget periods")?;

    // The admin applies its edits through the same reloader the watch uses.
    let reloader = Arc::new(Reloader {
        loaded: std::sync::Mutex::new(loaded.clone()),
        pool: pool.clone(),
        policy: policy.clone(),
        store: store.clone(),
        store_writer: store_writer.clone(),
        upstream: upstream.clone(),
        status: reloads.clone(),
        on_config: std::sync::OnceLock::new(),
    });
    let admin = Arc::new(crate::admin::AdminContext::new(state.clone(), reloader.clone(), &admin_key));
    // Secrets rotate live: a saved config's admin key and metrics token work at once.
    let generated_admin_key = config.auth.admin_key.is_empty().then(|| admin_key.clone());
    let _ = reloader.on_config.set(Box::new({
        let (admin, state) = (admin.clone(), state.clone());
        move |config: &crate::config::Config| {
            state.apply_config(config);
            let seeding = state.clone();
            tokio::spawn(async move {
                if let Err(err) = seeding.seed_budgets().await {
                    tracing::warn!("reading clients' budget spending failed: {err}");
                }
            });
            let admin_key = match (&generated_admin_key, config.auth.admin_key.as_str()) {
                (Some(generated), "") => generated.clone(),
                (_, configured) => configured.to_string(),
            };
            if admin_key.is_empty() {
                return;
            }
            admin.gate.set_key(&admin_key);
            state.access.set_metrics_token(metrics_token(config, &admin_key));
        }
    }));
    // Another replica's admin changed client keys: read them again here.
    if let Some(mut heard) = cluster.as_ref().and_then(|c| c.heard.lock().ok()?.take()) {
        let (state, reloader) = (state.clone(), reloader.clone());
        tokio::spawn(async move {
            while let Some(crate::cluster::Notice::Clients) = heard.recv().await {
                if let Err(err) = state.reload_clients(&reloader.current().config).await {
                    tracing::warn!("reading client keys again failed: {err}");
                }
            }
        });
    }
    let watch = if config.reload.watch {
        match watch::start(reloader.clone()) {
            Ok(watch) => Some(watch),
            Err(err) => {
                tracing::warn!("live reload is off: cannot watch the files ({err})");
                None
            }
        }
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, signal) = oneshot::channel::<()>();
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let server = tokio::spawn(async move {
        let stop = async {
            let _ = signal.await;
        };
        crate::server::serve(listener, routes(state, admin), limits, stop, grace).await
    });

    tracing::info!("gemgate {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
    let group_text: Vec<String> = groups.iter().map(|(group, n)| format!("{group} {n}")).collect();
    tracing::info!(
        "keys: {key_count} loaded from {} ({}); {} line(s) skipped, {} duplicate(s)",
        keys_dir.display(),
        if group_text.is_empty() { "none: add key files to serve requests".to_string() } else { group_text.join(", ") },
        key_set.warnings.len(),
        key_set.duplicates
    );
    tracing::info!("native Gemini API: http://{addr}/v1beta (and /v1), upstream {}", config.upstream.base_url);
    tracing::info!("admin: http://{addr}/admin/ (API docs at /admin/docs)");
    tracing::info!("OpenAI API: http://{addr}/v1/chat/completions, /v1/models, /v1/embeddings (and under /openai/v1)");

    Ok(RunningApp {
        addr,
        pool,
        store,
        store_writer,
        generated_client_key,
        reloads,
        _watch: watch,
        prober,
        _cluster: cluster,
        shutdown: Some(shutdown),
        server,
    })
}

impl RunningApp {
    /// Stops accepting, lets requests finish, stops the pool, flushes the store.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(prober) = self.prober.take() {
            prober.abort();
        }
        self.pool.stop().await;
        self.store_writer.flush().await;
        self.store.close().await;
    }
}

/// Probes resting proxies and relays every `secs` seconds (0: never).
fn start_prober(upstream: &UpstreamClient, secs: u64) -> Option<tokio::task::JoinHandle<()>> {
    let upstream = upstream.clone();
    (secs > 0).then(|| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(secs));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                upstream.probe().await;
            }
        })
    })
}

/// Who may read `/metrics`: `auth.metrics_token`, or the admin key without one.
fn metrics_token<'a>(config: &'a crate::config::Config, admin_key: &'a str) -> &'a str {
    if config.auth.metrics_token.is_empty() { admin_key } else { &config.auth.metrics_token }
}

fn group_counts(records: &[crate::keys::KeyRecord]) -> BTreeMap<String, usize> {
    let mut groups = BTreeMap::new();
    for record in records {
        *groups.entry(record.group.to_string()).or_insert(0) += 1;
    }
    groups
}

/// The full route table: the client dialects, the admin, probes and metrics,
/// behind the path check and the request id.
fn routes(state: Arc<AppState>, admin: Arc<crate::admin::AdminContext>) -> impl poem::Endpoint {
    use poem::EndpointExt;
    poem::Route::new()
        .nest("/admin", crate::admin::routes(admin))
        .at("/v1beta/openai/*path", api::google_openai::passthrough)
        .at("/v1beta/*path", api::native::native)
        .at("/v1/*path", api::v1)
        .at("/openai/v1/*path", api::openai_only)
        .at("/anthropic/v1/*path", api::anthropic_only)
        .at("/healthz", api::healthz)
        .at("/readyz", api::readyz)
        .at("/metrics", api::metrics)
        .at("/*path", api::not_found)
        .data(state)
        .around(api::refuse_unsafe_paths)
        .around(api::with_request_id)
}
