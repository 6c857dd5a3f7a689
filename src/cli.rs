//! The `sallyport` command line. `anyhow` lives here and in `main` only.
//!
//! * `serve` — run the gateway (no arguments: HTTPS on 127.0.0.1:8443 with embedded state
//!   in `./sallyport-data`, a development CA made on first start);
//! * `check-config FILE` — validate a configuration exactly as `serve` would load it;
//! * `audit verify` / `audit export` — check or export the audit hash chain;
//! * `token generate` — make an API client token and the hash to put in the config;
//! * `keys status|rotate|rewrap|retire` — the key-encryption keys (audited);
//! * `preflight [--profile NAME]` — the go-live checklist for batch delivery (offline);
//! * `link …`, `artifact …`, `batch …` — through the running gateway's API;
//! * `client upload|download` — the transfer client for senders and partners.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod api;
pub mod audit;
pub mod batch;
pub mod client;
pub mod invite;
pub mod keys;
pub mod link;
pub mod preflight;
pub mod serve;

use crate::config::{Config, ProcessEnv};

/// Sallyport: a secure file-transfer gateway for healthcare data.
#[derive(Debug, Parser)]
#[command(name = "sallyport", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without one, embedded defaults are used.
    #[arg(long, short = 'c', global = true, env = "SALLYPORT_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Validate a configuration file (and SALLYPORT_* overrides) and exit.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// The go-live checklist: TLS, keys, state store, retention and the release profiles.
    /// Prints one line per check; exit 0 all passed, 1 a check failed, 2 unknown --profile.
    Preflight {
        /// Check only this profile (default: every configured profile).
        #[arg(long)]
        profile: Option<String>,
    },
    /// Audit trail operations.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// API client tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Key-encryption keys: status, rotate, rewrap data keys, retire old versions.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Signed links (publisher): issue, list, show, revoke — through the running gateway.
    Link {
        /// How to reach the gateway.
        #[command(flatten)]
        api: api::ApiArgs,
        /// What to do.
        #[command(subcommand)]
        command: link::LinkCommand,
    },
    /// Upload invitations (publisher): issue, list, show, revoke — through the running
    /// gateway.
    Invite {
        /// How to reach the gateway.
        #[command(flatten)]
        api: api::ApiArgs,
        /// What to do.
        #[command(subcommand)]
        command: invite::InviteCommand,
    },
    /// Batches: open, list, show, seal, report (uploader); release, purge (auditor) —
    /// through the running gateway. Exit 0 released, 1 error, 3 quarantined, 4 still sealing.
    Batch {
        /// How to reach the gateway.
        #[command(flatten)]
        api: api::ApiArgs,
        /// What to do.
        #[command(subcommand)]
        command: batch::BatchCommand,
    },
    /// The transfer client for senders and partners: upload files (tus, resumable,
    /// per-chunk SHA-256) and download signed links (resumable, verified). Exit 0 all
    /// verified, 2 usage, 3 verification failed, 4 refused, 5 network, 6 local file.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Artifacts (publisher): register, show — through the running gateway.
    Artifact {
        /// How to reach the gateway.
        #[command(flatten)]
        api: api::ApiArgs,
        /// What to do.
        #[command(subcommand)]
        command: link::ArtifactCommand,
    },
}

/// Token operations.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new random client token and print the config entry that admits it.
    ///
    /// With `--token-out FILE` the token goes to FILE (created with mode 0600; an existing
    /// file is never overwritten) and standard output carries only the `[[clients]]` entry,
    /// so `... --token-out ops.token >> sallyport.toml` is the whole first-run step. Without
    /// it, the token and the entry are printed for a person to copy.
    Generate {
        /// The client name to put in the config entry.
        #[arg(long, default_value = "my-client")]
        name: String,
        /// A role for the entry (repeat for several): uploader, publisher, auditor,
        /// admin, metrics. Default: uploader.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Write the token to this new file (mode 0600) instead of printing it; the file
        /// is what `--token-file` reads.
        #[arg(long, value_name = "FILE")]
        token_out: Option<std::path::PathBuf>,
    },
}

/// Parses arguments and runs; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let config = Config::load(cli.config.as_deref(), &ProcessEnv)?;
            runtime()?.block_on(serve::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Preflight { profile } => Ok(preflight::run(
            cli.config.as_deref(),
            &ProcessEnv,
            profile.as_deref(),
        )),
        Command::Audit(audit::AuditCommand::Query(args)) => {
            let config = client_config(cli.config.as_deref(), &args.api)?;
            runtime()?.block_on(audit::query::run_query(*args, config.as_ref()))
        }
        Command::Audit(audit::AuditCommand::Trace(args)) => {
            let config = client_config(cli.config.as_deref(), &args.api)?;
            runtime()?.block_on(audit::query::run_trace(args, config.as_ref()))
        }
        Command::Audit(cmd) => {
            let config = Config::load(cli.config.as_deref(), &ProcessEnv)?;
            runtime()?.block_on(audit::run(cmd, &config))
        }
        Command::Keys(cmd) => {
            let config = Config::load(cli.config.as_deref(), &ProcessEnv)?;
            runtime()?.block_on(run_keys(cmd, &config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Link { api, command } => {
            let config = client_config(cli.config.as_deref(), &api)?;
            runtime()?.block_on(link::run_link(command, &api, config.as_ref()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invite { api, command } => {
            let config = client_config(cli.config.as_deref(), &api)?;
            runtime()?.block_on(invite::run(command, &api, config.as_ref()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Batch { api, command } => {
            let config = client_config(cli.config.as_deref(), &api)?;
            runtime()?.block_on(batch::run(command, &api, config.as_ref()))
        }
        Command::Artifact { api, command } => {
            let config = client_config(cli.config.as_deref(), &api)?;
            runtime()?.block_on(link::run_artifact(command, &api, config.as_ref()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(cmd) => Ok(ExitCode::from(client::run(cmd))),
        Command::Token(TokenCommand::Generate {
            name,
            roles,
            token_out,
        }) => generate_token(&name, &roles, token_out.as_deref()),
    }
}

/// `token generate` (see [`TokenCommand::Generate`]).
fn generate_token(
    name: &str,
    roles: &[String],
    token_out: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let _: crate::auth::ClientName = name
        .parse()
        .map_err(|m: String| anyhow::anyhow!("--name {name:?}: {m}"))?;
    let mut names: Vec<&str> = Vec::new();
    for r in roles {
        let role: crate::auth::Role = r
            .parse()
            .map_err(|m: String| anyhow::anyhow!("--role {r:?}: {m}"))?;
        if !names.contains(&role.as_str()) {
            names.push(role.as_str());
        }
    }
    if names.is_empty() {
        names.push(crate::auth::Role::Uploader.as_str());
    }
    let (token, hash) = crate::auth::generate_token();
    let token = token.expose_str().unwrap_or_default();
    let roles = names
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let entry = format!(
        "[[clients]]\nname = {name:?}\ntoken_sha256 = \"{}\"\nroles = [{roles}]\n",
        hash.to_hex()
    );
    match token_out {
        Some(path) => {
            crate::secret::write_private_file(path, format!("{token}\n").as_bytes()).with_context(
                || {
                    format!(
                        "writing the token to {} (a new file; an existing one is never overwritten)",
                        path.display()
                    )
                },
            )?;
            eprintln!(
                "token written to {} (mode 0600; give it to the client, it is stored nowhere else); \
                 the config entry is on standard output",
                path.display()
            );
            print!("\n{entry}");
        }
        None => {
            println!("token (give this to the client; it is not stored anywhere):");
            println!("  {token}");
            println!();
            println!("config entry:");
            for line in entry.lines() {
                println!("  {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration, for the API client's defaults. Not needed (and not loaded, so its
/// secret files need not be readable) when both the URL and the CA are given.
fn client_config(
    path: Option<&std::path::Path>,
    api: &api::ApiArgs,
) -> anyhow::Result<Option<Config>> {
    if api.url.is_some() && api.ca_file.is_some() {
        return Ok(None);
    }
    Ok(Some(Config::load(path, &ProcessEnv)?))
}

/// Runs a `keys` command with every key event written to the audit trail as it happens.
async fn run_keys(cmd: keys::KeysCommand, config: &Config) -> anyhow::Result<()> {
    use crate::audit::events::{
        DekRewrapFailed, DekRewrapped, KekRetired, KekRotated, KeyChangeRequested, RewrapStarted,
    };
    use crate::audit::{AuditContext, Auditor};
    use crate::keys::admin::KeyEvent;

    enum Owned {
        Rotated(String),
        Started(u64, String),
        Rewrapped(String, String, String),
        Failed(String, String),
        Retired(String),
    }
    let state = crate::app::open_state(config).await?;
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let auditor = Auditor::start(
        crate::app::open_audit_writer(config, &state).await?,
        "cli".to_owned(),
        512,
        metrics,
    );
    // Audit before acting: a rotation or retirement (which destroys key material) is on the
    // trail before it happens, or does not happen.
    let intent = match &cmd {
        keys::KeysCommand::Rotate => Some(KeyChangeRequested {
            operation: "rotate",
            version: None,
        }),
        keys::KeysCommand::Retire { version } => Some(KeyChangeRequested {
            operation: "retire",
            version: Some(*version),
        }),
        keys::KeysCommand::Status { .. } | keys::KeysCommand::Rewrap { .. } => None,
    };
    if let Some(intent) = intent {
        auditor
            .emit(&AuditContext::operator(), &intent)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "the audit trail refused the key change's record ({e}); nothing was changed"
                )
            })?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Owned>();
    let writer = {
        let auditor = auditor.clone();
        tokio::spawn(async move {
            let ctx = AuditContext::operator();
            while let Some(e) = rx.recv().await {
                let r = match e {
                    Owned::Rotated(kek) => auditor.emit(&ctx, &KekRotated { kek }).await,
                    Owned::Started(total, to) => {
                        auditor.emit(&ctx, &RewrapStarted { total, to }).await
                    }
                    Owned::Rewrapped(object, from, to) => {
                        auditor.emit(&ctx, &DekRewrapped { object, from, to }).await
                    }
                    Owned::Failed(object, error) => {
                        auditor.emit(&ctx, &DekRewrapFailed { object, error }).await
                    }
                    Owned::Retired(kek) => auditor.emit(&ctx, &KekRetired { kek }).await,
                };
                r?;
            }
            Ok::<(), crate::audit::AuditError>(())
        })
    };
    let result =
        keys::run_with_events(cmd, &config.keys, state, &mut std::io::stdout(), &mut |e| {
            let owned = match e {
                KeyEvent::Rotated { kek } => Owned::Rotated(kek.to_string()),
                KeyEvent::RewrapStarted { total, to } => Owned::Started(total, to.to_string()),
                KeyEvent::Rewrapped { object, from, to } => {
                    Owned::Rewrapped(object.to_owned(), from.to_string(), to.to_string())
                }
                KeyEvent::RewrapFailed { object, error } => {
                    Owned::Failed(object.to_owned(), error.to_string())
                }
                KeyEvent::Retired { kek } => Owned::Retired(kek.to_string()),
                KeyEvent::RewrapProgress { .. } => return,
            };
            let _ = tx.send(owned);
        })
        .await;
    drop(tx);
    let audited = writer.await?;
    result?;
    audited.map_err(|e| {
        anyhow::anyhow!("the key operation succeeded but its audit record failed: {e}")
    })
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let config = match Config::load(Some(file), &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid configuration", file.display());
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Files the configuration points at must be usable too.
    if let crate::tls::CertSource::Files { .. } = config.tls.certificate
        && let Err(e) = crate::tls::server_config(
            &config.tls,
            &config.data_dir,
            config.allow_world_readable_secrets,
        )
    {
        eprintln!("{}: invalid TLS configuration", file.display());
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!("{}: ok", file.display());
    println!(
        "  listen        {}{}",
        config.server.listen,
        if config.server.danger_plaintext_http {
            " (PLAINTEXT HTTP)"
        } else {
            " (HTTPS)"
        }
    );
    println!("  data_dir      {}", config.data_dir.display());
    println!(
        "  state store   {}",
        match &config.state {
            crate::config::StateSettings::Embedded { path } =>
                format!("embedded ({})", path.display()),
            crate::config::StateSettings::Redis { prefix, .. } =>
                format!("redis (prefix {prefix})"),
        }
    );
    println!("  clients       {}", config.clients.clients().len());
    let names: Vec<&str> = config
        .batches
        .profiles
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    println!(
        "  profiles      {}{}",
        names.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({}; `sallyport preflight` checks them)", names.join(", "))
        }
    );
    for name in &config.overridden_by_env {
        println!("  overridden by {name}");
    }
    ExitCode::SUCCESS
}
