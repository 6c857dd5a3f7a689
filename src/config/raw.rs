//! The configuration file as written: serde structs with `deny_unknown_fields` and every
//! default in one place. Nothing outside `config` sees these; they are converted once into
//! the validated types in `config.rs`.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where the gateway keeps its embedded state, blobs, keyring and development CA.
    pub data_dir: Option<String>,
    /// Accept secret files that group or others can read.
    #[serde(default)]
    pub allow_world_readable_secrets: bool,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub blob: RawBlob,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub keys: crate::keys::config::RawKeysConfig,
    #[serde(default)]
    pub uploads: RawUploads,
    #[serde(default)]
    pub links: crate::links::config::RawLinksConfig,
    #[serde(default)]
    pub artifacts: crate::links::config::RawArtifactsConfig,
    #[serde(default)]
    pub batches: crate::batch::config::RawBatchesConfig,
    /// `[[profiles]]`: the release profiles a batch manifest may name.
    #[serde(default)]
    pub profiles: Vec<crate::batch::config::RawProfile>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
    /// `[smart]` and `[[smart.clients]]`: SMART Backend Services.
    #[serde(default)]
    pub smart: crate::smart::config::RawSmartConfig,
    /// `[bulk]`: the FHIR Bulk Data flow's timings.
    #[serde(default)]
    pub bulk: crate::bulk::config::RawBulkConfig,
    /// `[invitations]`: upload invitations' lifetimes and limits.
    #[serde(default)]
    pub invitations: crate::invite::config::RawInviteConfig,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawUploads {
    pub base_path: Option<String>,
    pub max_size: Option<String>,
    pub expire_after: Option<String>,
    pub lease_ttl: Option<String>,
    pub body_timeout: Option<String>,
    pub min_body_rate: Option<String>,
    pub completed_retention: Option<String>,
    pub max_open_per_principal: Option<usize>,
    pub max_bytes_per_principal: Option<String>,
    pub max_chunks_per_upload: Option<u64>,
    pub max_metadata_bytes: Option<String>,
    pub max_metadata_pairs: Option<usize>,
    pub max_concat_parts: Option<usize>,
    pub cors_allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    #[serde(default)]
    pub danger_plaintext_http: bool,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub metrics_access: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_header_bytes: Option<String>,
    pub max_body_bytes: Option<String>,
    pub shutdown_grace: Option<String>,
    pub hsts_max_age: Option<String>,
    /// Balancer addresses whose connections start with a PROXY protocol v2 header.
    pub proxy_protocol_from: Option<Vec<String>>,
    pub proxy_protocol_timeout: Option<String>,
    /// Peers whose `forwarded_header` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    pub forwarded_header: Option<String>,
    /// This gateway's stable name in a shared state store.
    pub instance_id: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth: Option<String>,
    pub client_ca_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub backend: Option<String>,
    pub path: Option<String>,
    pub redis_url: Option<String>,
    pub redis_url_file: Option<String>,
    pub redis_prefix: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBlob {
    pub backend: Option<String>,
    pub path: Option<String>,
    // `backend = "s3"` (validated in `blob::s3::settings`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    pub credentials_file: Option<String>,
    pub ca_file: Option<String>,
    pub piece_size: Option<String>,
    pub allow_unconditional_create: Option<bool>,
    // Inline S3 keys: accepted by the parser only to be refused with the reason.
    pub access_key: Option<serde::de::IgnoredAny>,
    pub secret_key: Option<serde::de::IgnoredAny>,
    pub access_key_id: Option<serde::de::IgnoredAny>,
    pub secret_access_key: Option<serde::de::IgnoredAny>,
    pub session_token: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub batch_max: Option<usize>,
    pub security_window: Option<String>,
    pub checkpoint_every: Option<u64>,
    pub checkpoint_interval: Option<String>,
    pub checkpoint_key: Option<String>,
    pub checkpoint_dir: Option<String>,
    pub checkpoint_bucket: Option<String>,
    pub store: Option<String>,
    pub segment_bytes: Option<String>,
    pub retention: Option<String>,
    pub archive_dir: Option<String>,
    pub archive_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    pub token_sha256: Option<String>,
    pub token_sha256_file: Option<String>,
    pub cert_sha256: Option<String>,
    pub cert_san: Option<String>,
    pub roles: Vec<String>,
    pub publish_for: Option<Vec<String>>,
    pub publish_from_owners: Option<Vec<String>>,
}
