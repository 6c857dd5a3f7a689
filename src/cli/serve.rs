//! `sallyport serve`: build the gateway from the configuration and run it until a signal.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::audit::events::{ServerStarted, ServerStopped, TlsReloaded};
use crate::audit::{AuditContext, Auditor};
use crate::auth::Authenticator;
use crate::blob::BlobStore;
use crate::blob::local::LocalBlobStore;
use crate::config::{BlobSettings, Config, StateSettings};
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::state::StateStore;
use crate::state::embedded::EmbeddedStateStore;
use crate::state::redis::RedisStateStore;
use crate::tls::ClientAuth;
use crate::tls::TlsReloader;

/// Opens the configured state store.
pub async fn open_state(config: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match &config.state {
        StateSettings::Embedded { path } => {
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            Arc::new(
                EmbeddedStateStore::open(path).with_context(|| {
                    format!("opening the embedded state store {}", path.display())
                })?,
            )
        }
        StateSettings::Redis { url, prefix } => {
            let url = url.expose_str().unwrap_or_default();
            Arc::new(
                RedisStateStore::connect(url, prefix)
                    .await
                    .context("connecting to the Redis state store")?,
            )
        }
    })
}

fn open_embedded(config: &Config) -> anyhow::Result<Arc<EmbeddedStateStore>> {
    let StateSettings::Embedded { path } = &config.state else {
        anyhow::bail!("the state store is not embedded");
    };
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    Ok(Arc::new(EmbeddedStateStore::open(path).with_context(
        || format!("opening the embedded state store {}", path.display()),
    )?))
}

/// Deletes expired records from the embedded store every minute (Redis expires keys
/// itself), so its file does not grow with dead upload records and leases.
fn spawn_embedded_sweeper(store: Arc<EmbeddedStateStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = store.sweep_expired().await {
                tracing::warn!(error = %e, "sweeping expired state failed");
            }
        }
    });
}

/// Deletes expired unfinished uploads (data, keys, ledger) every minute; audited.
fn spawn_upload_sweeper(uploads: crate::upload::Uploads) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match uploads.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expired uploads deleted"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
            }
        }
    });
}

/// The signed-link service: the link keyring (from `[links]`, or the generated key file),
/// grants, artifacts, and the import directory (created 0700 if missing).
fn build_links(
    config: &Config,
    state: Arc<dyn StateStore>,
    at_rest: crate::at_rest::AtRest,
    read_at_rest: crate::at_rest::AtRest,
) -> anyhow::Result<Arc<crate::links::Links>> {
    let keyring =
        crate::links::keys::build_keyring(&config.links, config.allow_world_readable_secrets)
            .context("loading the link-signing keys")?;
    create_private_dir(&config.artifacts.import_dir)?;
    tracing::info!(current_key = %keyring.current_key_id(), "link keys loaded");
    Ok(Arc::new(crate::links::Links::new(
        config.links.clone(),
        &config.artifacts,
        keyring,
        state,
        at_rest,
        read_at_rest,
    )))
}

/// Opens the configured blob store.
pub fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match &config.blob {
        BlobSettings::Local { path } => Arc::new(
            LocalBlobStore::open(path)
                .with_context(|| format!("opening the blob store {}", path.display()))?,
        ),
    })
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SALLYPORT_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}:{}", std::process::id())
}

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    let config = Arc::new(config);
    create_private_dir(&config.data_dir)?;
    let started = Instant::now();
    let state: Arc<dyn StateStore> = match &config.state {
        StateSettings::Embedded { .. } => {
            let embedded = open_embedded(&config)?;
            spawn_embedded_sweeper(embedded.clone());
            embedded
        }
        StateSettings::Redis { .. } => open_state(&config).await?,
    };
    let blobs = open_blobs(&config)?;
    let metrics = Arc::new(Metrics::new());
    let auditor = Auditor::start(
        state.clone(),
        instance_name(),
        config.audit.batch_max,
        metrics.clone(),
    );
    let plaintext = config.server.danger_plaintext_http;
    let tls = if plaintext {
        tracing::warn!(
            "danger_plaintext_http is on: serving plain HTTP. Only do this behind a \
             TLS-terminating proxy on a trusted network; PHI must never cross a network in clear"
        );
        say(format_args!(
            "WARNING: serving PLAIN HTTP (server.danger_plaintext_http = true)"
        ));
        None
    } else {
        Some(Arc::new(
            TlsReloader::new(
                config.tls.clone(),
                &config.data_dir,
                config.allow_world_readable_secrets,
            )
            .context("building the TLS configuration")?,
        ))
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let local = listener.local_addr()?;
    let scheme = if plaintext { "http" } else { "https" };
    let authenticators: Vec<Arc<dyn Authenticator>> = vec![Arc::new(config.clients.clone())];
    let keys = config
        .keys
        .build_provider()
        .context("opening the key provider")?;
    let at_rest = crate::at_rest::AtRest::new(
        blobs.clone(),
        state.clone(),
        keys.clone(),
        config.at_rest.segment_size,
    );
    // Downloads read finished objects through a small-blob ciphertext cache.
    let read_blobs: Arc<dyn BlobStore> = Arc::new(crate::links::blob_cache::SmallBlobCache::new(
        blobs.clone(),
        config.links.artifact_cache_ttl,
    ));
    let read_at_rest =
        crate::at_rest::AtRest::new(read_blobs, state.clone(), keys, config.at_rest.segment_size);
    let links = build_links(&config, state.clone(), at_rest.clone(), read_at_rest)?;
    let uploads = crate::upload::Uploads::new(
        state.clone(),
        at_rest,
        auditor.clone(),
        config.uploads.clone(),
    );
    spawn_upload_sweeper(uploads.clone());
    let app = Arc::new(AppState {
        config: config.clone(),
        state: state.clone(),
        blobs: blobs.clone(),
        auditor: auditor.clone(),
        metrics,
        authenticators,
        started,
        routes: crate::http::endpoint::Routes {
            uploads: config.uploads.base.clone(),
        },
        uploads,
        links,
    });
    auditor
        .emit(
            &AuditContext::system(),
            &ServerStarted {
                version: env!("CARGO_PKG_VERSION"),
                listen: local.to_string(),
                scheme,
                client_auth: match config.tls.client_auth {
                    ClientAuth::Off => "off",
                    ClientAuth::Optional { .. } => "optional",
                    ClientAuth::Required { .. } => "required",
                },
                state_store: state.kind(),
                blob_store: blobs.kind(),
            },
        )
        .await
        .context("writing the first audit entry")?;
    let shutdown = shutdown_signal()?;
    if let Some(tls) = &tls {
        spawn_reload_on_sighup(tls.clone(), auditor.clone())?;
    }
    tracing::info!(listen = %local, scheme, state_store = state.kind(), "sallyport serving");
    say(format_args!("sallyport serving {scheme}://{local}/"));
    if let (Some(_), crate::tls::CertSource::Development) = (&tls, &config.tls.certificate) {
        let ca = crate::tls::devca::DevCaPaths::under(&config.data_dir).ca_cert;
        say(format_args!("development CA: {}", ca.display()));
        say(format_args!(
            "try: curl --cacert {} {scheme}://{}/healthz",
            ca.display(),
            display_host(local)
        ));
    }
    let report = crate::http::server::serve(listener, app, tls, shutdown).await;
    if let Err(e) = auditor
        .emit(
            &AuditContext::system(),
            &ServerStopped {
                abandoned_connections: report.abandoned_connections,
            },
        )
        .await
    {
        tracing::error!(error = %e, "could not audit the shutdown");
    }
    tracing::info!(
        abandoned = report.abandoned_connections,
        "sallyport stopped"
    );
    Ok(())
}

fn display_host(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

fn spawn_reload_on_sighup(tls: Arc<TlsReloader>, auditor: Auditor) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let result = tls.reload();
            let event = match &result {
                Ok(()) => {
                    tracing::info!("TLS configuration reloaded");
                    TlsReloaded {
                        ok: true,
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the old configuration");
                    TlsReloaded {
                        ok: false,
                        error: Some(e.to_string()),
                    }
                }
            };
            let _ = auditor.emit(&AuditContext::system(), &event).await;
        }
    });
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now (before the gateway announces itself, so a
/// signal that arrives right after start-up still shuts it down gracefully and audited)
/// and returns the future that resolves on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown signal received");
    })
}

/// A line for the operator on stdout. Write errors (a closed terminal or pipe) are
/// ignored: they must never take the gateway down.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}
