//! `sallyport serve`: build the gateway ([`crate::app::build`]), then listen, terminate TLS
//! and serve until a signal; audited at start, on every TLS reload, and at stop.

use std::sync::Arc;

use anyhow::Context;

use crate::audit::events::{ServerStarted, ServerStopped, TlsReloaded};
use crate::audit::{AuditContext, Auditor};
use crate::config::Config;
use crate::tls::ClientAuth;
use crate::tls::TlsReloader;

fn init_logging(config: &Config) {
    let filter = std::env::var("SALLYPORT_LOG")
        .ok()
        .and_then(|v| crate::config::log_filter(&v).ok())
        .or_else(|| crate::config::log_filter(&config.log.level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file or a collector's stream break
    // every search for `key=value`.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    let app = crate::app::build(config).await?;
    let outcome = serve_app(&app).await;
    // Also when start-up failed after joining (TLS files, bind): a restart then joins at
    // once instead of watching this process's heartbeat lapse.
    app.leave().await;
    outcome
}

async fn serve_app(app: &crate::app::App) -> anyhow::Result<()> {
    app.spawn_sweepers();
    let (config, state, blobs, auditor) = (
        app.state.config.clone(),
        app.state.state.clone(),
        app.state.blobs.clone(),
        app.state.auditor.clone(),
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
    let report = crate::http::server::serve(listener, app.state.clone(), tls, shutdown).await;
    // The window under way closes now: its repeats would otherwise never be summarised.
    app.state.security.flush().await;
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
