//! The composition root: [`build`] turns a validated [`Config`] into an [`App`] — state and
//! blob stores opened (or, with [`build_with_state`], over a state store the caller
//! opened), the audit writer started, the key provider, at-rest stores, upload
//! engine and signed-link service wired together — and nothing else builds them. `serve`
//! adds the listener, TLS and signals; the other CLI commands use [`open_state`]; tests
//! build an `App` and call it in process through [`App::service`] (tower `oneshot`).
//!
//! Not here: the accept loop and TLS (`http::server`, `tls`), background timers (started by
//! [`App::spawn_sweepers`], which `serve` calls and tests usually do not).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::audit::journal::Journal;
use crate::audit::log::{AuditLog, StateLog};
use crate::audit::{AUDIT_LOG, Auditor};
use crate::auth::Authenticator;
use crate::blob::BlobStore;
use crate::blob::local::LocalBlobStore;
use crate::config::{AuditStore, BlobSettings, Config, StateSettings};
use crate::http::AppState;
use crate::http::context::ConnInfo;
use crate::metrics::Metrics;
use crate::state::StateStore;
use crate::state::embedded::EmbeddedStateStore;
use crate::state::redis::{Presence, RedisStateStore};

/// A built gateway, ready to serve.
#[derive(Debug, Clone)]
pub struct App {
    /// What handlers share.
    pub state: Arc<AppState>,
    /// The embedded store, when it is the state store (its sweeper needs the concrete type).
    embedded: Option<Arc<EmbeddedStateStore>>,
    /// This process's presence in the Redis store, when that is the state store; taken by
    /// [`App::leave`] on clean shutdown.
    presence: Arc<std::sync::Mutex<Option<Presence>>>,
    /// The journal and checkpoint key the retention sweep needs, when `audit.retention`
    /// is set.
    archive: Option<Archive>,
}

/// What the retention sweep (`audit::archive::run`) works on.
#[derive(Debug, Clone)]
struct Archive {
    journal: Arc<Journal>,
    key: Arc<crate::audit::checkpointer::CheckpointKey>,
    retention: crate::config::Retention,
}

/// Builds the gateway from `config`: opens the stores (creating private directories as
/// needed), starts the audit writer and wires every service. Starts no listener and no
/// timer; needs a tokio runtime.
pub async fn build(config: Config) -> anyhow::Result<App> {
    create_private_dir(&config.data_dir)?;
    let (state, embedded, presence): (Arc<dyn StateStore>, _, _) = match &config.state {
        StateSettings::Embedded { path } => {
            let store = Arc::new(open_embedded(path)?);
            (store.clone(), Some(store), None)
        }
        StateSettings::Redis { url, prefix } => {
            let (store, presence) = join_redis(&config, url, prefix).await?;
            (Arc::new(store), None, Some(presence))
        }
    };
    let mut app = match build_with_state(config, state).await {
        Ok(app) => app,
        Err(e) => {
            // Joined but not serving: leave, so a restart is not taken for a twin.
            if let Some(presence) = presence
                && let Err(leave) = presence.leave().await
            {
                tracing::warn!(error = %leave, "could not leave the Redis store");
            }
            return Err(e);
        }
    };
    app.embedded = embedded;
    app.presence = Arc::new(std::sync::Mutex::new(presence));
    Ok(app)
}

/// [`build`] over a state store the caller opened instead of the configured one (the
/// `[state]` section is ignored): tests run a whole gateway over a store that injects
/// faults (a failed audit append, an outage). The embedded store's expiry sweeper is not
/// started for such a store.
pub async fn build_with_state(config: Config, state: Arc<dyn StateStore>) -> anyhow::Result<App> {
    let config = Arc::new(config);
    create_private_dir(&config.data_dir)?;
    let started = Instant::now();
    let blobs = open_blobs(&config).await?;
    let metrics = Arc::new(Metrics::new());
    let checkpoint_key = crate::audit::checkpointer::CheckpointKey::load_or_generate(
        &config.audit.checkpoint_key,
        config.allow_world_readable_secrets,
    )
    .context("opening the audit checkpoint key")?;
    if let Some(dir) = &config.audit.checkpoint_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating audit.checkpoint_dir {}", dir.display()))?;
    }
    let mut checkpointer = crate::audit::checkpointer::Checkpointer::new(
        checkpoint_key,
        config.audit.checkpoint_every,
        config.audit.checkpoint_interval,
        config.audit.checkpoint_dir.clone(),
        metrics.clone(),
    );
    if let (Some(bucket), BlobSettings::S3(s3)) = (&config.audit.checkpoint_bucket, &config.blob) {
        let folder = crate::blob::s3::write_once::WriteOnceFolder::open(
            s3,
            bucket,
            &crate::audit::checkpointer::bucket_folder(&checkpointer.key_id_hex()),
        )
        .context("opening audit.checkpoint_bucket")?;
        let location = folder.location().to_owned();
        checkpointer = checkpointer.with_bucket(folder);
        // The writer must know the highest checkpoint it signed there before it appends.
        checkpointer.recall_bucket().await.with_context(|| {
            format!("reading the audit checkpoints in {location} (audit.checkpoint_bucket)")
        })?;
    }
    let (audit_log, journal) = open_audit_writer_parts(&config, &state).await?;
    let archive = match (&config.audit.retention, journal) {
        (Some(retention), Some(journal)) => Some(Archive {
            journal,
            // The same key file the checkpointer signs with, read again.
            key: Arc::new(
                crate::audit::checkpointer::CheckpointKey::load_or_generate(
                    &config.audit.checkpoint_key,
                    config.allow_world_readable_secrets,
                )
                .context("opening the audit checkpoint key")?,
            ),
            retention: retention.clone(),
        }),
        _ => None,
    };
    // The outbox (`audit::outbox`) only where this process alone writes the chain and the
    // state store: the journal, which is only kept with the embedded store.
    let outbox_state = (config.audit.store == AuditStore::Journal).then(|| state.clone());
    let auditor = Auditor::start_full(
        audit_log,
        instance_name(),
        config.audit.batch_max,
        metrics.clone(),
        Some(checkpointer),
        outbox_state,
    );
    // Entries an earlier process left in the outbox reach the chain before anything new.
    let drained = auditor
        .drain_outbox()
        .await
        .context("appending the audit outbox's entries to the chain")?;
    if drained != Default::default() {
        tracing::info!(
            appended = drained.appended,
            already_in_chain = drained.already_in_chain,
            "audit outbox drained"
        );
    }
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
    let batch_store =
        crate::batch::store::BatchStore::new(state.clone(), at_rest.clone(), config.batches.limits);
    let security =
        crate::audit::security::SecurityEvents::new(auditor.clone(), config.audit.security_window);
    let links = build_links(
        &config,
        state.clone(),
        at_rest.clone(),
        read_at_rest,
        auditor.clone(),
        security.clone(),
        crate::batch::gate::BatchGate::new(batch_store.clone()),
    )?;
    let (smart, smart_tokens) =
        build_smart(&config, state.clone(), auditor.clone(), security.clone())?;
    let invitation_keys = invitation_keys(&config)?;
    // SMART access tokens and invitation tokens first: the client registry refuses any
    // bearer token it does not know, and never sees a `spat1~` or `inv1~` token.
    let authenticators: Vec<Arc<dyn Authenticator>> = vec![
        Arc::new(smart_tokens),
        Arc::new(crate::invite::token::InvitationTokens::new(
            invitation_keys.clone(),
        )),
        Arc::new(config.clients.clone()),
    ];
    let uploads = crate::upload::Uploads::new(
        state.clone(),
        at_rest,
        auditor.clone(),
        crate::artifact::Artifacts::new(state.clone()),
        config.uploads.clone(),
    )
    .with_membership(crate::batch::admission::Admission::new(
        batch_store.clone(),
        auditor.clone(),
    ));
    let batches = crate::batch::Batches::new(
        batch_store,
        auditor.clone(),
        uploads.clone(),
        config.batches.clone(),
    );
    // The FHIR Bulk Data flow exists when SMART clients are registered (their tokens are
    // its only callers); otherwise its routes answer 404.
    let bulk = (!config.smart.clients.is_empty()).then(|| {
        crate::bulk::Bulk::new(
            crate::bulk::record::BulkStore::new(state.clone()),
            batches.clone(),
            links.clone(),
            uploads.clone(),
            auditor.clone(),
            config.smart.clone(),
            config.bulk.clone(),
        )
    });
    let invitations = crate::invite::Invitations::new(
        state.clone(),
        invitation_keys,
        batches.clone(),
        uploads.clone(),
        auditor.clone(),
        security.clone(),
        config.invitations.clone(),
    );
    let audit_index = open_audit_index(&config);
    let audit_search = crate::audit::search::AuditSearch::new(
        Arc::new(crate::audit::source::Chain(auditor.log().clone())),
        audit_index.clone(),
        auditor.clone(),
    );
    let app = AppState {
        routes: crate::http::endpoint::Routes {
            uploads: config.uploads.base.clone(),
        },
        config,
        state,
        blobs,
        auditor,
        security,
        metrics,
        authenticators,
        started,
        uploads,
        links,
        batches,
        smart,
        bulk,
        invitations,
        audit_search,
        audit_index,
    };
    Ok(App {
        state: Arc::new(app),
        embedded: None,
        presence: Arc::new(std::sync::Mutex::new(None)),
        archive,
    })
}

impl App {
    /// On clean shutdown: appends the audit entries the writer holds, and leaves the shared
    /// state store (deletes this process's alive key, so a restart with the same instance
    /// id joins at once; nothing to leave on the embedded store or when called twice).
    pub async fn leave(&self) {
        // Outboxed audit entries the writer still holds go into the chain now (else the
        // next start appends them from the outbox).
        self.state.auditor.flush().await;
        let presence = match self.presence.lock() {
            Ok(mut p) => p.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(presence) = presence
            && let Err(e) = presence.leave().await
        {
            tracing::warn!(error = %e, "could not leave the state store; the restart waits for the heartbeat to lapse");
        }
    }

    /// Starts the background sweepers: expired unfinished uploads every minute (audited),
    /// and, on the embedded store, expired records (Redis expires keys itself).
    pub fn spawn_sweepers(&self) {
        if let Some(store) = &self.embedded {
            spawn_embedded_sweeper(store.clone());
        }
        spawn_upload_sweeper(self.state.uploads.clone());
        spawn_batch_sweeper(self.state.batches.clone());
        tokio::spawn(self.state.security.clone().run());
        self.spawn_audit_indexer();
        self.spawn_audit_archiver();
    }

    /// Starts the retention sweep (`audit::archive::run`) when `audit.retention` is set:
    /// every `audit.archive_interval`, sealed journal segments past the retention move to
    /// `audit.archive_dir`.
    pub fn spawn_audit_archiver(&self) {
        if let Some(a) = &self.archive {
            tokio::spawn(crate::audit::archive::run(
                a.journal.clone(),
                a.key.clone(),
                self.state.auditor.clone(),
                a.retention.clone(),
            ));
        }
    }

    /// Starts the audit indexer (`audit::index::run`), when the index could be opened: it
    /// indexes what this gateway's writer appends (handed over in memory) and tails the
    /// chain every second. Also for tests that want an index without sweepers.
    pub fn spawn_audit_indexer(&self) {
        if let Some(index) = &self.state.audit_index {
            let source = Arc::new(crate::audit::source::Chain(
                self.state.auditor.log().clone(),
            ));
            // The writer hands its appended entries over in memory (at most two pages
            // held); the chain is read only for what the tap does not cover.
            let page = crate::audit::index::PAGE;
            let tap = self.state.auditor.tap(page, 2 * page);
            tokio::spawn(crate::audit::index::run(
                index.clone(),
                source,
                Some(tap),
                std::time::Duration::from_secs(1),
                std::future::pending(),
            ));
        }
    }

    /// The gateway as a tower service for requests from `peer` over plain HTTP: the whole
    /// request pipeline (`http::edge`), with no socket. For in-process tests.
    pub fn service(
        &self,
        peer: SocketAddr,
    ) -> impl tower::Service<
        http::Request<axum::body::Body>,
        Response = http::Response<axum::body::Body>,
        Error = std::convert::Infallible,
        Future = impl Future<
            Output = Result<http::Response<axum::body::Body>, std::convert::Infallible>,
        > + Send,
    > + Clone {
        let state = self.state.clone();
        let conn = Arc::new(ConnInfo {
            peer,
            origin: peer.ip(),
            tls: None,
            client: None,
        });
        tower::service_fn(move |req: http::Request<axum::body::Body>| {
            let state = state.clone();
            let conn = conn.clone();
            async move { Ok(crate::http::edge::handle(state, conn, req).await) }
        })
    }
}

/// Opens the configured state store.
pub async fn open_state(config: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match &config.state {
        StateSettings::Embedded { path } => Arc::new(open_embedded(path)?),
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

/// The journal directory of this gateway's chain: `<data_dir>/audit/audit`.
pub fn journal_dir(config: &Config) -> PathBuf {
    config.data_dir.join("audit").join(AUDIT_LOG.0)
}

/// Opens the configured audit log for writing (`audit.store`): the journal (locked to this
/// process; a chain still in the state store is copied into it first, once), or the state
/// store's log.
pub async fn open_audit_writer(
    config: &Config,
    state: &Arc<dyn StateStore>,
) -> anyhow::Result<Arc<dyn AuditLog>> {
    Ok(open_audit_writer_parts(config, state).await?.0)
}

/// [`open_audit_writer`], and the journal itself when that is the log.
pub async fn open_audit_writer_parts(
    config: &Config,
    state: &Arc<dyn StateStore>,
) -> anyhow::Result<(Arc<dyn AuditLog>, Option<Arc<Journal>>)> {
    let in_state = StateLog::shared(state.clone());
    match config.audit.store {
        AuditStore::State => Ok((in_state, None)),
        AuditStore::Journal => {
            let journal = Journal::open(
                &journal_dir(config),
                AUDIT_LOG.0,
                config.audit.segment_bytes.bytes(),
            )?;
            crate::audit::journal::migrate::from_state(&journal, &*in_state)
                .await
                .context("copying the audit chain from the state store into the journal")?;
            let journal = Arc::new(journal);
            Ok((journal.clone(), Some(journal)))
        }
    }
}

/// Opens the configured audit log for the CLI's readers (`audit verify|export|ship`). The
/// journal is read without a lock, beside a running gateway; a journal not created yet
/// (no gateway has started with it) means the chain is still in the state store.
pub async fn open_audit_log(config: &Config) -> anyhow::Result<Arc<dyn AuditLog>> {
    let dir = journal_dir(config);
    let journal_exists = dir.join(crate::audit::journal::migrate::MARKER).exists()
        || crate::audit::journal::segments::list(&dir).is_ok_and(|s| !s.is_empty());
    if config.audit.store == AuditStore::Journal && journal_exists {
        return Ok(Arc::new(Journal::open_read_only(&dir, AUDIT_LOG.0)?));
    }
    Ok(StateLog::shared(open_state(config).await?))
}

/// Connects to Redis and joins it as this gateway's instance (`server.instance_id`, or the
/// id kept in the data directory): refuses to start while another live gateway has the same
/// id, and starts the heartbeat (`state::redis::presence`).
async fn join_redis(
    config: &Config,
    url: &crate::secret::Secret,
    prefix: &str,
) -> anyhow::Result<(RedisStateStore, Presence)> {
    let id = crate::state::instance::resolve(config.server.instance_id.as_ref(), &config.data_dir)
        .context("finding this gateway's instance id")?;
    let store = RedisStateStore::connect(url.expose_str().unwrap_or_default(), prefix)
        .await
        .context("connecting to the Redis state store")?;
    let (store, presence, joined) = store
        .join(id)
        .await
        .context("joining the Redis state store")?;
    tracing::info!(
        instance_id = %presence.instance_id(),
        incarnation = joined.incarnation,
        waited_ms = joined.waited.as_millis() as u64,
        "joined the Redis state store"
    );
    Ok((store, presence))
}

fn open_embedded(path: &std::path::Path) -> anyhow::Result<EmbeddedStateStore> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    EmbeddedStateStore::open(path)
        .with_context(|| format!("opening the embedded state store {}", path.display()))
}

/// Opens the configured blob store.
pub async fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match &config.blob {
        BlobSettings::Local { path } => Arc::new(
            LocalBlobStore::open(path)
                .with_context(|| format!("opening the blob store {}", path.display()))?,
        ),
        BlobSettings::S3(s3) => {
            let store = crate::blob::s3::S3BlobStore::open(s3)
                .with_context(|| format!("opening the S3 blob store (bucket {})", s3.bucket))?;
            let refused = store
                .refuses_second_create()
                .await
                .with_context(|| format!("checking the S3 blob store (bucket {})", s3.bucket))?;
            if !refused {
                let what = format!(
                    "the S3 server of bucket {} did not refuse a second create of one key \
                     (PutObject with If-None-Match: *): it overwrites instead, so two gateways \
                     creating one object could both succeed and an audit checkpoint could be \
                     replaced",
                    s3.bucket
                );
                if !s3.allow_unconditional_create {
                    anyhow::bail!(
                        "{what}; use a server that supports conditional writes, or, with a \
                         single gateway, set blob.allow_unconditional_create = true \
                         (docs/deployment.md)"
                    );
                }
                tracing::warn!("{what} (allowed by blob.allow_unconditional_create)");
            }
            Arc::new(store)
        }
    })
}

/// The signed-link service: the link keyring (from `[links]`, or the generated key file),
/// grants, artifacts, and the import directory (created 0700 if missing).
fn build_links(
    config: &Config,
    state: Arc<dyn StateStore>,
    at_rest: crate::at_rest::AtRest,
    read_at_rest: crate::at_rest::AtRest,
    auditor: Auditor,
    security: crate::audit::security::SecurityEvents,
    batch_gate: crate::batch::gate::BatchGate,
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
        auditor,
        security,
        batch_gate,
    )))
}

/// The SMART token service and the authenticator of its tokens; the token keys derive
/// from the link keys (docs/decisions/0007-smart-access-tokens.md).
fn build_smart(
    config: &Config,
    state: Arc<dyn StateStore>,
    auditor: Auditor,
    security: crate::audit::security::SecurityEvents,
) -> anyhow::Result<(crate::smart::Smart, crate::smart::access_token::SmartTokens)> {
    let link_keys =
        crate::links::keys::load_keys(&config.links, config.allow_world_readable_secrets)
            .context("loading the link-signing keys for SMART access tokens")?;
    let keys = crate::smart::access_token::TokenKeys::derive(&link_keys)
        .context("no current link key to derive SMART access-token keys from")?;
    let keys = Arc::new(keys);
    let tokens = crate::smart::access_token::SmartTokens::new(keys.clone(), config.smart.clone());
    let smart = crate::smart::Smart::new(config.smart.clone(), keys, state, auditor, security);
    Ok((smart, tokens))
}

/// The upload-invitation token keys, derived from the link keys like the SMART token
/// keys (`links::derived`).
fn invitation_keys(config: &Config) -> anyhow::Result<Arc<crate::invite::token::InvitationKeys>> {
    let link_keys =
        crate::links::keys::load_keys(&config.links, config.allow_world_readable_secrets)
            .context("loading the link-signing keys for upload invitations")?;
    let keys = crate::invite::token::InvitationKeys::derive(&link_keys)
        .context("no current link key to derive upload-invitation keys from")?;
    Ok(Arc::new(keys))
}

/// Deletes expired records from the embedded store every minute, so its file does not grow
/// with dead upload records and leases.
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

/// Resumes interrupted seals (at once: a restart continues its seals), expires open
/// batches, and purges released batches at the end of their retention, every
/// `batches.sweep_interval`; audited.
fn spawn_batch_sweeper(batches: crate::batch::Batches) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(batches.settings().sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match batches.sweep().await {
                Ok(s) if s.expired + s.retired > 0 => {
                    tracing::info!(expired = s.expired, retired = s.retired, "batches swept");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping batches failed"),
            }
        }
    });
}

/// Creates `dir` and its parents with mode 0700.
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}:{}", std::process::id())
}

/// The audit index `<data_dir>/audit-index.redb` (`audit::index`), created or rebuilt as
/// needed. A failure is logged and queries scan the chain instead: the index is derived
/// and never needed for the gateway to serve.
fn open_audit_index(config: &Config) -> Option<Arc<crate::audit::index::AuditIndex>> {
    let path = config.data_dir.join(crate::audit::index::FILE_NAME);
    match crate::audit::index::AuditIndex::open(&path) {
        Ok(index) => Some(Arc::new(index)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "audit index unavailable; queries scan the chain");
            None
        }
    }
}
