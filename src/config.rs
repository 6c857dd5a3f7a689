//! Configuration: one TOML file plus `SALLYPORT_*` environment overrides, parsed once into
//! validated types.
//!
//! Loading goes raw → validated: the file is deserialised into the `raw` structs (which
//! reject unknown keys, naming them), overrides from the environment are applied, and
//! [`Config::from_raw`] turns every value into the type the rest of the gateway uses
//! ([`ByteSize`], `SocketAddr`, [`ClientAuth`]…) or fails with a [`ConfigError`] that names
//! the key. `sallyport check-config FILE` runs exactly this path. Every key and its default
//! is documented in `config/sallyport.example.toml`; `tests/config_example.rs` checks that
//! file still loads.
//!
//! Not here: acting on the configuration (TLS, stores and auth build themselves from the
//! validated values).
//!
//! Size: one file past the house's ~400 lines on purpose — `from_raw` converts every
//! section in one place, so a reader checks each key's validation and default side by side
//! with its neighbours; the raw structs, units and env overrides are already split out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod blob;
pub mod env;
pub mod raw;
pub mod units;

use crate::auth::{
    ApiClient, CertBinding, ClientName, ClientRegistry, PublisherScope, Role, RoleSet, TokenHash,
};
use crate::proxy::Networks;
use crate::proxy::forwarded::ForwardedHeader;
use crate::secret::{FilePolicy, Secret, read_private_file, read_secret_file};
use crate::tls::{CertSource, ClientAuth, TlsSettings};
pub use env::{Env, ProcessEnv};
use raw::RawConfig;
pub use units::ByteSize;
use units::{format_duration, parse_duration};

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "sallyport-data";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// A configuration problem, naming the key (or environment variable) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A value is present but wrong.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted key path, e.g. `server.listen`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// An environment override does not fit.
    #[error("{0}")]
    Env(String),
    /// The config file was refused by the strict file check: not a regular file, owned by
    /// someone else, writable by group or others (whoever can edit it can add a client or
    /// turn TLS off), or larger than 4 MiB.
    #[error(transparent)]
    File(#[from] crate::secret::PrivateFileError),
}

/// Parses `log.level` (or `SALLYPORT_LOG`) as an `EnvFilter` whose field values match
/// exactly: as regexes they compile to a DFA exponential in the pattern, so one short
/// directive could stall startup for minutes (found by fuzzing, `fuzz/` target `config`).
pub fn log_filter(
    directives: &str,
) -> Result<tracing_subscriber::EnvFilter, tracing_subscriber::filter::ParseError> {
    tracing_subscriber::EnvFilter::builder()
        .with_regex(false)
        .parse(directives)
}

/// Reads the config file through the one strict file check (`secret::read_private_file`):
/// a regular file, owned by this user or root, not writable by group or others (readable
/// is fine: it holds no secrets, only paths to them), at most 4 MiB.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let mut bytes = read_private_file(path, FilePolicy::CONFIG)?;
    String::from_utf8(std::mem::take(&mut *bytes)).map_err(|_| ConfigError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Embedded state, blobs, keyring, development CA.
    pub data_dir: PathBuf,
    /// Whether secret files readable by group/others are accepted.
    pub allow_world_readable_secrets: bool,
    /// Listener, limits and timeouts.
    pub server: ServerSettings,
    /// Certificates and client authentication.
    pub tls: TlsSettings,
    /// Which state store.
    pub state: StateSettings,
    /// Which blob store.
    pub blob: BlobSettings,
    /// Log format and level.
    pub log: LogSettings,
    /// Audit trail tuning.
    pub audit: AuditSettings,
    /// Key hierarchy.
    pub keys: crate::keys::config::KeysSettings,
    /// The at-rest segment size of new objects (written as `keys.segment_size`).
    pub at_rest: crate::at_rest::AtRestSettings,
    /// The tus upload endpoint.
    pub uploads: crate::upload::UploadSettings,
    /// Signed links: keys, lifetimes, the forged-link limiter.
    pub links: crate::links::config::LinksSettings,
    /// Artifact registration: the import directory.
    pub artifacts: crate::links::config::ArtifactsSettings,
    /// `[batches]` and `[[profiles]]`.
    pub batches: crate::batch::BatchSettings,
    /// API clients and their roles.
    pub clients: ClientRegistry,
    /// SMART Backend Services: the token endpoint and its registered clients.
    pub smart: std::sync::Arc<crate::smart::config::SmartSettings>,
    /// `[bulk]`: the FHIR Bulk Data flow's timings.
    pub bulk: crate::bulk::config::BulkSettings,
    /// `[invitations]`: upload invitations' lifetimes and limits.
    pub invitations: crate::invite::config::InviteSettings,
    /// Environment variables that overrode file values (names only, for the start-up log).
    pub overridden_by_env: Vec<String>,
}

/// The listener and its protections.
/// Who may read `/metrics` (`server.metrics_access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone who can reach the listener (`"open"`, the default: keep the listener on a
    /// private network then).
    Open,
    /// Only clients with the `metrics` role (or `admin`), by bearer token (`"role"`).
    Role,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Serve plain HTTP (only behind a TLS-terminating proxy).
    pub danger_plaintext_http: bool,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// Connections served at once from one client IP address; more are closed at once,
    /// so that one address cannot take every `max_connections` slot.
    pub max_connections_per_address: usize,
    /// A client must send its request headers within this time (slowloris).
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this time.
    pub idle_timeout: Duration,
    /// Largest request head (request line plus headers).
    pub max_header_bytes: ByteSize,
    /// Largest body of an API request (uploads have their own limits).
    pub max_body_bytes: ByteSize,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    /// `Strict-Transport-Security` max-age (0 disables the header).
    pub hsts_max_age: Duration,
    /// Balancers whose connections must start with a PROXY protocol v2 header (empty:
    /// PROXY protocol off; no connection's bytes are read as a header).
    pub proxy_protocol_from: Networks,
    /// How long a listed balancer has to send its PROXY header.
    pub proxy_protocol_timeout: Duration,
    /// Proxies whose `forwarded_header` names the client (empty: the header is never read).
    pub trusted_proxies: Networks,
    /// Which field trusted proxies write the client into.
    pub forwarded_header: ForwardedHeader,
    /// This gateway's stable name in a shared (Redis) state store; `None`: the id kept in
    /// `<data_dir>/instance-id`, generated on first start (`state::instance`).
    pub instance_id: Option<crate::state::instance::InstanceId>,
}

/// Which state store.
#[derive(Debug, Clone)]
pub enum StateSettings {
    /// redb in a file.
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis server shared by several gateway instances.
    Redis {
        /// `redis://` or `rediss://` URL (may contain a password, hence secret).
        url: Secret,
        /// Prefix of every key the gateway writes.
        prefix: String,
    },
}

/// Which blob store.
#[derive(Debug, Clone)]
pub enum BlobSettings {
    /// A directory on local disk.
    Local {
        /// The directory.
        path: PathBuf,
    },
    /// An S3-compatible object store shared by several gateway instances.
    S3(Box<crate::blob::s3::settings::S3Settings>),
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines (default) or human-readable text.
    pub json: bool,
    /// An `EnvFilter` directive, e.g. `info` or `sallyport=debug,info`.
    pub level: String,
}

/// Audit trail tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Most events appended to the chain in one state-store write.
    pub batch_max: usize,
    /// Failed authentications and refused TLS handshakes are audited first-per-address
    /// and then summarized once per this window (`audit::security`).
    pub security_window: Duration,
    /// A signed checkpoint at least every this many entries (`audit::checkpointer`).
    pub checkpoint_every: u64,
    /// …and every this long when any entry was appended since the last one.
    pub checkpoint_interval: Duration,
    /// The Ed25519 checkpoint key file (PKCS#8 PEM, 0600; generated when missing).
    pub checkpoint_key: PathBuf,
    /// Where checkpoint files are created (never overwritten); `None`: the log only.
    pub checkpoint_dir: Option<PathBuf>,
    /// The bucket (on the `[blob]` S3 endpoint) receiving checkpoint objects, never
    /// overwritten; `None`: not written to S3 (the blob store is local, or `"off"`).
    pub checkpoint_bucket: Option<String>,
    /// Where the chain's entries are stored.
    pub store: AuditStore,
    /// The journal closes a segment file once it would pass this size.
    pub segment_bytes: ByteSize,
    /// Retention and archive of sealed journal segments (`audit::archive`); `None` (the
    /// default): nothing is ever archived.
    pub retention: Option<Retention>,
}

/// `audit.retention`, `audit.archive_dir`, `audit.archive_interval`: sealed journal
/// segments whose newest entry is older than `period` move to `archive_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// How long entries stay in the live journal (at least one day).
    pub period: Duration,
    /// Where archived segments and their closing checkpoints go (never inside the journal).
    pub archive_dir: PathBuf,
    /// How often the gateway's sweep runs.
    pub interval: Duration,
}

/// Where the audit chain is stored (`audit.store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStore {
    /// `journal`: append-only segment files under `<data_dir>/audit/` (the default).
    Journal,
    /// `state`: the state store's log (redb or Redis), as before the journal.
    State,
}

impl Config {
    /// Loads `path` (or only defaults when `None`) and applies overrides from `env`.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => read_config_file(p)?,
            None => String::new(),
        };
        Self::from_toml(&text, env)
    }

    /// Parses TOML text plus overrides.
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        let (raw, applied) = raw_from_toml(text, env)?;
        let mut config = Self::from_raw(raw)?;
        config.overridden_by_env = applied;
        Ok(config)
    }

    /// Validates the raw values.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(raw.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let allow_open = raw.allow_world_readable_secrets;
        let server = server_settings(&raw.server)?;
        let tls = tls_settings(&raw.tls, server.danger_plaintext_http)?;
        let state = state_settings(&raw.state, &data_dir, allow_open)?;
        let blob = blob::blob_settings(&raw.blob, &data_dir, allow_open)?;
        let log = LogSettings {
            json: match raw.log.format.as_deref().unwrap_or("json") {
                "json" => true,
                "text" => false,
                other => {
                    return Err(invalid(
                        "log.format",
                        format!("{other:?} is not \"json\" or \"text\""),
                    ));
                }
            },
            level: raw.log.level.clone().unwrap_or_else(|| "info".to_owned()),
        };
        log_filter(&log.level).map_err(|e| invalid("log.level", format!("{e}")))?;
        let audit = AuditSettings {
            batch_max: match raw.audit.batch_max.unwrap_or(512) {
                n @ 1..=10_000 => n,
                n => {
                    return Err(invalid(
                        "audit.batch_max",
                        format!("{n} is not in 1..=10000"),
                    ));
                }
            },
            security_window: {
                let w = duration_or(
                    "audit.security_window",
                    raw.audit.security_window.as_deref(),
                    Duration::from_secs(60),
                )?;
                if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&w) {
                    return Err(invalid("audit.security_window", "must be from 1s to 1h"));
                }
                w
            },
            checkpoint_every: match raw.audit.checkpoint_every.unwrap_or(1000) {
                n @ 1..=10_000_000 => n,
                n => {
                    return Err(invalid(
                        "audit.checkpoint_every",
                        format!("{n} is not in 1..=10000000"),
                    ));
                }
            },
            checkpoint_interval: {
                let w = duration_or(
                    "audit.checkpoint_interval",
                    raw.audit.checkpoint_interval.as_deref(),
                    Duration::from_secs(60),
                )?;
                if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&w) {
                    return Err(invalid(
                        "audit.checkpoint_interval",
                        "must be from 1s to 24h",
                    ));
                }
                w
            },
            checkpoint_key: match raw.audit.checkpoint_key.as_deref() {
                None => data_dir.join("audit-checkpoint.key"),
                Some("") => return Err(invalid("audit.checkpoint_key", "must not be empty")),
                Some(p) => PathBuf::from(p),
            },
            checkpoint_dir: match raw.audit.checkpoint_dir.as_deref() {
                None => None,
                Some("") => return Err(invalid("audit.checkpoint_dir", "must not be empty")),
                Some(p) => Some(PathBuf::from(p)),
            },
            checkpoint_bucket: blob::checkpoint_bucket(
                raw.audit.checkpoint_bucket.as_deref(),
                &blob,
            )?,
            // One gateway per data directory keeps its chain in its journal; gateways
            // sharing Redis share one chain through it (docs/decisions/0004-audit-journal.md).
            store: match (raw.audit.store.as_deref(), &state) {
                (None, StateSettings::Embedded { .. })
                | (Some("journal"), StateSettings::Embedded { .. }) => AuditStore::Journal,
                (None | Some("state"), _) => AuditStore::State,
                (Some("journal"), StateSettings::Redis { .. }) => {
                    return Err(invalid(
                        "audit.store",
                        "\"journal\" keeps the chain in this gateway's data directory; gateways sharing the Redis state store share one chain through it: use \"state\" (docs/decisions/0004-audit-journal.md)",
                    ));
                }
                (Some(other), _) => {
                    return Err(invalid(
                        "audit.store",
                        format!("{other:?} is not \"journal\" or \"state\""),
                    ));
                }
            },
            segment_bytes: {
                let size = size_or(
                    "audit.segment_bytes",
                    raw.audit.segment_bytes.as_deref(),
                    ByteSize(64 << 20),
                )?;
                if !(ByteSize(64 << 10)..=ByteSize(1 << 30)).contains(&size) {
                    return Err(invalid(
                        "audit.segment_bytes",
                        format!("{size} is not from 64KiB to 1GiB"),
                    ));
                }
                size
            },
            retention: None,
        };
        let audit = AuditSettings {
            retention: retention(&raw.audit, &data_dir, audit.store)?,
            ..audit
        };
        let clients = clients(&raw.clients, allow_open)?;
        let mut raw_keys = raw.keys;
        raw_keys.danger_allow_world_readable_secrets |= allow_open;
        // Checked before the rest of `[keys]`, as when `keys` validated it.
        let at_rest = crate::at_rest::AtRestSettings::from_raw(raw_keys.segment_size)
            .map_err(|e| invalid("keys", e.to_string()))?;
        let keys = crate::keys::config::KeysSettings::from_raw(raw_keys, &data_dir)
            .map_err(|e| invalid("keys", e.to_string()))?;
        let uploads = upload_settings(&raw.uploads)?;
        let links =
            crate::links::config::LinksSettings::from_raw(&raw.links, &data_dir, allow_open)
                .map_err(|e| invalid(&e.key, e.message))?;
        let artifacts =
            crate::links::config::ArtifactsSettings::from_raw(&raw.artifacts, &data_dir)
                .map_err(|e| invalid(&e.key, e.message))?;
        let batches = crate::batch::BatchSettings::from_raw(&raw.batches, &raw.profiles, &links)
            .map_err(|e| invalid(&e.key, e.message))?;
        let smart = crate::smart::config::SmartSettings::from_raw(
            &raw.smart,
            links.public_base_url.as_deref(),
        )
        .map_err(|e| invalid(&e.key, e.message))?;
        let bulk = crate::bulk::config::BulkSettings::from_raw(&raw.bulk)
            .map_err(|e| invalid(&e.key, e.message))?;
        let invitations = crate::invite::config::InviteSettings::from_raw(&raw.invitations)
            .map_err(|e| invalid(e.key, e.message))?;
        Ok(Self {
            data_dir,
            allow_world_readable_secrets: allow_open,
            server,
            tls,
            state,
            blob,
            log,
            audit,
            keys,
            at_rest,
            uploads,
            links,
            artifacts,
            batches,
            clients,
            smart: std::sync::Arc::new(smart),
            bulk,
            invitations,
            overridden_by_env: Vec::new(),
        })
    }
}

/// The file as written plus overrides, before validation: what `sallyport preflight` reads
/// to tell a value that was written from one left to its default. `None`: no file.
pub fn load_raw(path: Option<&Path>, env: &dyn Env) -> Result<RawConfig, ConfigError> {
    let text = match path {
        Some(p) => read_config_file(p)?,
        None => String::new(),
    };
    Ok(raw_from_toml(&text, env)?.0)
}

/// Parses the file, applies the environment, and names the variables that applied.
fn raw_from_toml(text: &str, env: &dyn Env) -> Result<(RawConfig, Vec<String>), ConfigError> {
    // First parse the file alone, so its errors carry line numbers.
    toml::from_str::<RawConfig>(text).map_err(|e| syntax_error(text, &e))?;
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e: toml::de::Error| syntax_error(text, &e))?;
    let applied = env::apply(&mut table, env).map_err(ConfigError::Env)?;
    let raw: RawConfig = toml::Value::Table(table).try_into().map_err(|e| {
        ConfigError::Env(format!(
            "after applying environment overrides {applied:?}: {e}"
        ))
    })?;
    Ok((raw, applied))
}

/// A TOML error as "line L, column C: message". The toml crate's own `Display` quotes the
/// offending source line, which could echo an inline secret; this never does.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let position = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}: ")
    });
    ConfigError::Syntax(format!("{}{}", position.unwrap_or_default(), e.message()))
}

fn duration_or(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| {
        parse_duration(v).map_err(|m| invalid(key, m))
    })
}

/// `audit.retention` and its companions, validated: off unless `retention` is set; at
/// least one day; an archive directory that is not the journal's own or inside it.
fn retention(
    raw: &raw::RawAudit,
    data_dir: &Path,
    store: AuditStore,
) -> Result<Option<Retention>, ConfigError> {
    let Some(period) = raw.retention.as_deref() else {
        for (key, set) in [
            ("audit.archive_dir", raw.archive_dir.is_some()),
            ("audit.archive_interval", raw.archive_interval.is_some()),
        ] {
            if set {
                return Err(invalid(
                    key,
                    "is set but audit.retention is not: nothing would ever be archived (set audit.retention, e.g. \"6y\")",
                ));
            }
        }
        return Ok(None);
    };
    let period = parse_duration(period).map_err(|m| invalid("audit.retention", m))?;
    if period < Duration::from_secs(86_400) {
        return Err(invalid(
            "audit.retention",
            format!(
                "{} is less than 1 day; retention is meant in years (HIPAA practice: \"6y\")",
                format_duration(period)
            ),
        ));
    }
    if store != AuditStore::Journal {
        return Err(invalid(
            "audit.retention",
            "archives sealed journal segments; it needs audit.store = \"journal\" (the chain in the state store is not archived)",
        ));
    }
    let archive_dir = match raw.archive_dir.as_deref() {
        None => {
            return Err(invalid(
                "audit.archive_dir",
                "is required when audit.retention is set (where archived segments go: WORM or object-lock storage)",
            ));
        }
        Some("") => return Err(invalid("audit.archive_dir", "must not be empty")),
        Some(p) => PathBuf::from(p),
    };
    let journal = data_dir.join("audit");
    if is_within(&archive_dir, &journal) {
        return Err(invalid(
            "audit.archive_dir",
            format!(
                "{} is the audit journal's directory or inside it ({}); archive elsewhere",
                archive_dir.display(),
                journal.display()
            ),
        ));
    }
    let interval = duration_or(
        "audit.archive_interval",
        raw.archive_interval.as_deref(),
        Duration::from_secs(3600),
    )?;
    if !(Duration::from_secs(60)..=Duration::from_secs(7 * 86_400)).contains(&interval) {
        return Err(invalid("audit.archive_interval", "must be from 1m to 7d"));
    }
    Ok(Some(Retention {
        period,
        archive_dir,
        interval,
    }))
}

/// Whether `inner` is `outer` or below it: compared as absolute, `.`/`..`-free paths, and
/// again through symbolic links where both exist.
fn is_within(inner: &Path, outer: &Path) -> bool {
    fn lexical(p: &Path) -> PathBuf {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    }
    if lexical(inner).starts_with(lexical(outer)) {
        return true;
    }
    match (inner.canonicalize(), outer.canonicalize()) {
        (Ok(i), Ok(o)) => i.starts_with(o),
        _ => false,
    }
}

fn size_or(key: &str, value: Option<&str>, default: ByteSize) -> Result<ByteSize, ConfigError> {
    value.map_or(Ok(default), |v| {
        v.parse().map_err(|m: String| invalid(key, m))
    })
}

fn server_settings(raw: &raw::RawServer) -> Result<ServerSettings, ConfigError> {
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!("{listen:?} is not an IP:port address (example: 127.0.0.1:8443)"),
        )
    })?;
    let max_connections = raw.max_connections.unwrap_or(1024);
    if !(1..=1_000_000).contains(&max_connections) {
        return Err(invalid("server.max_connections", "must be in 1..=1000000"));
    }
    let metrics_access = match raw.metrics_access.as_deref().unwrap_or("open") {
        "open" => MetricsAccess::Open,
        "role" => MetricsAccess::Role,
        other => {
            return Err(invalid(
                "server.metrics_access",
                format!("{other:?} is not \"open\" or \"role\""),
            ));
        }
    };
    let max_connections_per_address = raw
        .max_connections_per_address
        .unwrap_or(max_connections.min(256));
    if !(1..=max_connections).contains(&max_connections_per_address) {
        return Err(invalid(
            "server.max_connections_per_address",
            format!("must be in 1..={max_connections} (server.max_connections)"),
        ));
    }
    let header_read_timeout = duration_or(
        "server.header_read_timeout",
        raw.header_read_timeout.as_deref(),
        Duration::from_secs(10),
    )?;
    if header_read_timeout.is_zero() {
        return Err(invalid("server.header_read_timeout", "must be more than 0"));
    }
    let idle_timeout = duration_or(
        "server.idle_timeout",
        raw.idle_timeout.as_deref(),
        Duration::from_secs(60),
    )?;
    if idle_timeout.is_zero() {
        return Err(invalid("server.idle_timeout", "must be more than 0"));
    }
    let max_header_bytes = size_or(
        "server.max_header_bytes",
        raw.max_header_bytes.as_deref(),
        ByteSize(16 * 1024),
    )?;
    if !(4096..=1 << 20).contains(&max_header_bytes.0) {
        return Err(invalid("server.max_header_bytes", "must be in 4KiB..=1MiB"));
    }
    let max_body_bytes = size_or(
        "server.max_body_bytes",
        raw.max_body_bytes.as_deref(),
        ByteSize(1 << 20),
    )?;
    if !(1024..=64 << 20).contains(&max_body_bytes.0) {
        return Err(invalid("server.max_body_bytes", "must be in 1KiB..=64MiB"));
    }
    let networks = |key: &str, list: &Option<Vec<String>>| {
        Networks::parse(list.as_deref().unwrap_or_default())
            .map_err(|e| invalid(key, e.to_string()))
    };
    let proxy_protocol_from = networks("server.proxy_protocol_from", &raw.proxy_protocol_from)?;
    let proxy_protocol_timeout = duration_or(
        "server.proxy_protocol_timeout",
        raw.proxy_protocol_timeout.as_deref(),
        Duration::from_secs(5).min(header_read_timeout),
    )?;
    if proxy_protocol_timeout.is_zero() || proxy_protocol_timeout > header_read_timeout {
        return Err(invalid(
            "server.proxy_protocol_timeout",
            "must be more than 0 and at most server.header_read_timeout",
        ));
    }
    let trusted_proxies = networks("server.trusted_proxies", &raw.trusted_proxies)?;
    let forwarded_header = match raw.forwarded_header.as_deref().unwrap_or("x-forwarded-for") {
        "x-forwarded-for" => ForwardedHeader::XForwardedFor,
        "forwarded" => ForwardedHeader::Forwarded,
        other => {
            return Err(invalid(
                "server.forwarded_header",
                format!("{other:?} is not \"x-forwarded-for\" or \"forwarded\""),
            ));
        }
    };
    let instance_id = raw
        .instance_id
        .as_deref()
        .map(crate::state::instance::InstanceId::parse)
        .transpose()
        .map_err(|e| invalid("server.instance_id", e.to_string()))?;
    Ok(ServerSettings {
        listen,
        instance_id,
        danger_plaintext_http: raw.danger_plaintext_http,
        proxy_protocol_from,
        proxy_protocol_timeout,
        trusted_proxies,
        forwarded_header,
        max_connections,
        max_connections_per_address,
        metrics_access,
        header_read_timeout,
        idle_timeout,
        max_header_bytes,
        max_body_bytes,
        shutdown_grace: duration_or(
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(30),
        )?,
        hsts_max_age: duration_or(
            "server.hsts_max_age",
            raw.hsts_max_age.as_deref(),
            Duration::from_secs(365 * 24 * 3600),
        )?,
    })
}

fn tls_settings(raw: &raw::RawTls, plaintext: bool) -> Result<TlsSettings, ConfigError> {
    let certificate = match (&raw.cert_file, &raw.key_file) {
        (None, None) => CertSource::Development,
        (Some(cert), Some(key)) => CertSource::Files {
            cert: cert.into(),
            key: key.into(),
        },
        (Some(_), None) => return Err(invalid("tls.key_file", "tls.cert_file needs a key_file")),
        (None, Some(_)) => return Err(invalid("tls.cert_file", "tls.key_file needs a cert_file")),
    };
    let ca = raw.client_ca_file.as_ref().map(PathBuf::from);
    let client_auth = match (raw.client_auth.as_deref().unwrap_or("off"), ca) {
        ("off", None) => ClientAuth::Off,
        ("off", Some(_)) => {
            return Err(invalid(
                "tls.client_ca_file",
                "is set but tls.client_auth is \"off\"; set client_auth to \"optional\" or \"required\"",
            ));
        }
        ("optional" | "required", None) => {
            return Err(invalid(
                "tls.client_ca_file",
                "mutual TLS needs the client CA bundle (PEM)",
            ));
        }
        ("optional", Some(ca)) => ClientAuth::Optional { ca },
        ("required", Some(ca)) => ClientAuth::Required { ca },
        (other, _) => {
            return Err(invalid(
                "tls.client_auth",
                format!("{other:?} is not \"off\", \"optional\" or \"required\""),
            ));
        }
    };
    if plaintext && client_auth != ClientAuth::Off {
        return Err(invalid(
            "tls.client_auth",
            "mutual TLS cannot work with server.danger_plaintext_http",
        ));
    }
    Ok(TlsSettings {
        certificate,
        client_auth,
    })
}

fn state_settings(
    raw: &raw::RawState,
    data_dir: &Path,
    allow_open: bool,
) -> Result<StateSettings, ConfigError> {
    match raw.backend.as_deref().unwrap_or("embedded") {
        "embedded" => {
            if raw.redis_url.is_some() || raw.redis_url_file.is_some() {
                return Err(invalid(
                    "state.redis_url",
                    "is set but state.backend is \"embedded\"",
                ));
            }
            Ok(StateSettings::Embedded {
                path: raw
                    .path
                    .as_deref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("state.redb")),
            })
        }
        "redis" => {
            let url = match (&raw.redis_url, &raw.redis_url_file) {
                (Some(u), None) => Secret::from_string(u.clone()),
                (None, Some(f)) => read_secret_file(Path::new(f), allow_open)
                    .map_err(|e| invalid("state.redis_url_file", e.to_string()))?,
                (None, None) => Secret::from_string("redis://127.0.0.1:6379".to_owned()),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "state.redis_url",
                        "set redis_url or redis_url_file, not both",
                    ));
                }
            };
            let text = url
                .expose_str()
                .ok_or_else(|| invalid("state.redis_url", "is not UTF-8"))?;
            if !(text.starts_with("redis://")
                || text.starts_with("rediss://")
                || text.starts_with("redis+unix://")
                || text.starts_with("unix://"))
            {
                // Never echo the URL: it may hold a password.
                return Err(invalid(
                    "state.redis_url",
                    "must start with redis://, rediss:// or unix://",
                ));
            }
            let prefix = raw
                .redis_prefix
                .clone()
                .unwrap_or_else(|| "sallyport:".to_owned());
            if prefix.is_empty()
                || prefix.len() > 64
                || !prefix.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(invalid(
                    "state.redis_prefix",
                    "must be 1-64 printable ASCII characters without spaces",
                ));
            }
            Ok(StateSettings::Redis { url, prefix })
        }
        other => Err(invalid(
            "state.backend",
            format!("unknown backend {other:?} (supported: \"embedded\", \"redis\")"),
        )),
    }
}

/// First path segments of the gateway's own routes (and of routes reserved for the FHIR
/// Bulk Data and SMART endpoints), which `uploads.base_path` may not take.
pub const RESERVED_ROUTE_SEGMENTS: [&str; 8] = [
    "healthz",
    "readyz",
    "metrics",
    "v1",
    "d",
    "fhir",
    "auth",
    ".well-known",
];

fn upload_settings(raw: &raw::RawUploads) -> Result<crate::upload::UploadSettings, ConfigError> {
    use crate::tus::TusLimits;
    let defaults = TusLimits::default();
    let base = raw.base_path.as_deref().unwrap_or("/files/");
    let base = crate::tus::concat::BasePath::new(base).map_err(|_| {
        invalid(
            "uploads.base_path",
            "must start and end with '/', at most 128 bytes of A-Z a-z 0-9 . _ ~ - segments",
        )
    })?;
    // The upload routes are matched first, so a base path over another route would
    // shadow it (`/` would take every request, `/v1/` the whole API).
    let first = base.as_str().split('/').nth(1).unwrap_or_default();
    if first.is_empty() || RESERVED_ROUTE_SEGMENTS.contains(&first) {
        return Err(invalid(
            "uploads.base_path",
            format!(
                "{:?} would shadow the gateway's own routes; its first segment must not be empty \
                 or one of {}",
                base.as_str(),
                RESERVED_ROUTE_SEGMENTS.join(", ")
            ),
        ));
    }
    let max_size = size_or(
        "uploads.max_size",
        raw.max_size.as_deref(),
        ByteSize(defaults.max_size),
    )?;
    if max_size.0 == 0 {
        return Err(invalid("uploads.max_size", "must be more than 0"));
    }
    let expire_after = duration_or(
        "uploads.expire_after",
        raw.expire_after.as_deref(),
        defaults.expire_after,
    )?;
    // Short expiries are for tests of expiry; a real deployment uses hours.
    if expire_after < Duration::from_secs(1) {
        return Err(invalid("uploads.expire_after", "must be at least 1s"));
    }
    // Short, so that a dead instance's leases lapse within a tus client's retries (tus-js-
    // client gives up after about 9 s); renewed every third of it while a request works.
    // The embedded store does not even wait that long: it drops every lease at open.
    let lease_ttl = duration_or(
        "uploads.lease_ttl",
        raw.lease_ttl.as_deref(),
        Duration::from_secs(6),
    )?;
    if !(Duration::from_secs(3)..=Duration::from_secs(600)).contains(&lease_ttl) {
        return Err(invalid("uploads.lease_ttl", "must be from 3s to 10m"));
    }
    let body_timeout = duration_or(
        "uploads.body_timeout",
        raw.body_timeout.as_deref(),
        Duration::from_secs(30),
    )?;
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&body_timeout) {
        return Err(invalid("uploads.body_timeout", "must be from 1s to 10m"));
    }
    // Apache's mod_reqtimeout uses 500 bytes/s for its body MinRate; 1 KiB/s is still
    // far below any link a clinic sends from (8 kbit/s).
    let min_body_rate = size_or(
        "uploads.min_body_rate",
        raw.min_body_rate.as_deref(),
        ByteSize(1024),
    )?
    .0;
    if min_body_rate > 1 << 30 {
        return Err(invalid(
            "uploads.min_body_rate",
            "must be at most 1GiB (bytes per second; 0 turns the floor off)",
        ));
    }
    let completed_retention = duration_or(
        "uploads.completed_retention",
        raw.completed_retention.as_deref(),
        Duration::from_secs(30 * 86_400),
    )?;
    if !(Duration::from_secs(60)..=Duration::from_secs(10 * 366 * 86_400))
        .contains(&completed_retention)
    {
        return Err(invalid(
            "uploads.completed_retention",
            "must be from 1m to 10 years",
        ));
    }
    let mut metadata = defaults.metadata;
    if let Some(n) = raw.max_metadata_pairs {
        if !(1..=1024).contains(&n) {
            return Err(invalid("uploads.max_metadata_pairs", "must be in 1..=1024"));
        }
        metadata.max_pairs = n;
    }
    let meta_bytes = size_or(
        "uploads.max_metadata_bytes",
        raw.max_metadata_bytes.as_deref(),
        ByteSize(metadata.max_decoded_total as u64),
    )?;
    if !(64..=1 << 20).contains(&meta_bytes.0) {
        return Err(invalid(
            "uploads.max_metadata_bytes",
            "must be in 64..=1MiB",
        ));
    }
    metadata.max_decoded_total = meta_bytes.0 as usize;
    let max_concat_parts = raw.max_concat_parts.unwrap_or(defaults.max_concat_parts);
    if !(1..=10_000).contains(&max_concat_parts) {
        return Err(invalid("uploads.max_concat_parts", "must be in 1..=10000"));
    }
    let max_open_per_principal = raw.max_open_per_principal.unwrap_or(100);
    // Counted with one state-store page, whose limit is 10000 items: a larger cap made
    // every creation fail (500) instead of counting.
    if !(1..=10_000).contains(&max_open_per_principal) {
        return Err(invalid(
            "uploads.max_open_per_principal",
            "must be in 1..=10000",
        ));
    }
    // A client's bytes in the gateway at once: 16 uploads of the default Tus-Max-Size.
    let max_bytes_per_principal = size_or(
        "uploads.max_bytes_per_principal",
        raw.max_bytes_per_principal.as_deref(),
        ByteSize(1 << 40),
    )?;
    if !(1 << 10..=1 << 60).contains(&max_bytes_per_principal.0) {
        return Err(invalid(
            "uploads.max_bytes_per_principal",
            "must be from 1KiB to 1EiB",
        ));
    }
    let max_chunks = raw.max_chunks_per_upload.unwrap_or(defaults.max_chunks);
    if !(1..=1_000_000).contains(&max_chunks) {
        return Err(invalid(
            "uploads.max_chunks_per_upload",
            "must be in 1..=1000000",
        ));
    }
    let mut cors_origins = Vec::new();
    for origin in raw.cors_allowed_origins.iter().flatten() {
        let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
            && !origin.ends_with('/')
            && origin.bytes().all(|b| b.is_ascii_graphic())
            && origin.len() <= 256;
        if !ok {
            return Err(invalid(
                "uploads.cors_allowed_origins",
                format!("{origin:?} is not an origin like https://portal.example.org"),
            ));
        }
        cors_origins.push(origin.clone());
    }
    Ok(crate::upload::UploadSettings {
        limits: TusLimits {
            max_size: max_size.0,
            expire_after,
            metadata,
            max_concat_parts,
            max_chunks,
        },
        base,
        lease_ttl,
        body_timeout,
        min_body_rate,
        completed_retention,
        max_open_per_principal,
        max_bytes_per_principal: max_bytes_per_principal.0,
        cors_origins,
    })
}

fn clients(raw: &[raw::RawClient], allow_open: bool) -> Result<ClientRegistry, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let key = |k: &str| format!("clients[{i}].{k}");
        let name: ClientName = c
            .name
            .parse()
            .map_err(|m: String| invalid(&key("name"), m))?;
        let cert = CertBinding::from_config(c.cert_sha256.as_deref(), c.cert_san.as_deref())
            .map_err(|(k, m)| invalid(&key(k), m))?;
        let hex = match (&c.token_sha256, &c.token_sha256_file) {
            (Some(h), None) => Some(Secret::from_string(h.clone())),
            (None, Some(f)) => Some(
                read_secret_file(Path::new(f), allow_open)
                    .map_err(|e| invalid(&key("token_sha256_file"), e.to_string()))?,
            ),
            (None, None) if cert.is_set() => None,
            _ => {
                return Err(invalid(
                    &key("token_sha256"),
                    "set exactly one of token_sha256 or token_sha256_file, or only \
                     cert_sha256 or cert_san for a client identified by its TLS certificate \
                     (`sallyport token generate` prints a token and its hash)",
                ));
            }
        };
        let hash = hex
            .map(|h| TokenHash::from_hex(h.expose()))
            .transpose()
            .map_err(|m| invalid(&key("token_sha256"), m))?;
        let mut roles = RoleSet::empty();
        for r in &c.roles {
            let role: Role = r.parse().map_err(|m: String| invalid(&key("roles"), m))?;
            roles.insert(role);
        }
        if roles.is_empty() {
            return Err(invalid(&key("roles"), "a client needs at least one role"));
        }
        let scope = publisher_scope(c, roles, &key)?;
        out.push(ApiClient {
            name,
            hash,
            cert,
            roles,
            scope: std::sync::Arc::new(scope),
        });
    }
    ClientRegistry::new(out).map_err(|m| invalid("clients", m))
}

/// `publish_for` (partner names) and `publish_from_owners` (client names); only for a
/// client that can publish, and never empty (an empty list would be a publisher that can
/// publish nothing: leave the client without the role instead).
fn publisher_scope(
    c: &raw::RawClient,
    roles: RoleSet,
    key: &dyn Fn(&str) -> String,
) -> Result<PublisherScope, ConfigError> {
    let publishes = roles.allows(Role::Publisher);
    let mut scope = PublisherScope::default();
    if let Some(ps) = &c.publish_for {
        if !publishes {
            return Err(invalid(
                &key("publish_for"),
                "only a publisher has a publishing scope",
            ));
        }
        if ps.is_empty() {
            return Err(invalid(
                &key("publish_for"),
                "list at least one partner (or leave it out: any partner)",
            ));
        }
        let partners = ps
            .iter()
            .map(|p| {
                p.parse::<crate::grant::PartnerName>()
                    .map(|p| p.to_string())
                    .map_err(|_| {
                        invalid(&key("publish_for"), format!("{p:?} is not a partner name"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        scope.partners = Some(partners);
    }
    if let Some(os) = &c.publish_from_owners {
        if !publishes {
            return Err(invalid(
                &key("publish_from_owners"),
                "only a publisher has a publishing scope",
            ));
        }
        if os.is_empty() {
            return Err(invalid(
                &key("publish_from_owners"),
                "list at least one owner (or leave it out: any owner)",
            ));
        }
        let owners = os
            .iter()
            .map(|o| {
                o.parse::<ClientName>()
                    .map_err(|m| invalid(&key("publish_from_owners"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        scope.owners = Some(owners);
    }
    Ok(scope)
}

#[cfg(test)]
mod tests;
