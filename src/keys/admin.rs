//! Key administration: rotate, rewrap, status and retire — the logic behind
//! `sallyport keys …`, kept apart from the CLI's printing so it is testable and so the
//! caller can turn each [`KeyEvent`] into an audit record.
//!
//! `rewrap_all` walks every wrapped-DEK record and re-wraps those not on the current KEK
//! version, each with a compare-and-swap on the record's version: it never touches object
//! data, is idempotent (records already current are skipped) and so resumable after an
//! interruption, and a record that changed or vanished meanwhile is re-read or skipped,
//! never overwritten. `retire` refuses while any record still references the version.
//!
//! Not here: argument parsing and progress display (`cli::keys`), audit emission (the
//! caller's `on_event`).

use std::sync::Arc;

use crate::ids::OpaqueId;
use crate::state::{CasOutcome, Expect, PutOptions, StateStore};

use super::record::{DEK_NAMESPACE, DekRecord, kek_index_entry};
use super::{KekRef, KekVersionInfo, KeyError, KeyProvider, Unreferenced, WrapContext};

/// Records listed per state-store page during rewrap and counting.
pub const PAGE_SIZE: usize = 256;
/// Compare-and-swap attempts per record before rewrap reports it as failed.
const CAS_ATTEMPTS: usize = 5;

/// Something key administration did; the hook for audit events.
#[derive(Debug)]
pub enum KeyEvent<'a> {
    /// A new KEK version became current.
    Rotated {
        /// The new current version.
        kek: &'a KekRef,
    },
    /// A rewrap run is starting; `total` is the number of DEK records at the start.
    RewrapStarted {
        /// Records counted at the start (more may appear while it runs).
        total: u64,
        /// The version DEKs are moved to.
        to: &'a KekRef,
    },
    /// One DEK record was examined (rewrapped, skipped or failed; see the other events).
    RewrapProgress {
        /// Records examined so far.
        examined: u64,
    },
    /// One object's DEK was re-wrapped.
    Rewrapped {
        /// The object (its id, as stored).
        object: &'a str,
        /// The version it was wrapped under.
        from: &'a KekRef,
        /// The version it is wrapped under now.
        to: &'a KekRef,
    },
    /// One object's DEK could not be re-wrapped; the run continues.
    RewrapFailed {
        /// The object.
        object: &'a str,
        /// Why.
        error: &'a KeyError,
    },
    /// A KEK version's material was destroyed.
    Retired {
        /// The version.
        kek: &'a KekRef,
    },
}

/// What a rewrap run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapSummary {
    /// Records looked at.
    pub examined: u64,
    /// Records re-wrapped to the current version.
    pub rewrapped: u64,
    /// Records already on the current version (skipped).
    pub already_current: u64,
    /// Records deleted while the run went on (objects deleted meanwhile).
    pub vanished: u64,
    /// Records that could not be re-wrapped (see the `RewrapFailed` events).
    pub failed: u64,
}

/// One KEK version and how many DEK records it wraps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// The version.
    pub info: KekVersionInfo,
    /// DEK records wrapped under it.
    pub deks: u64,
}

/// The provider's versions and their use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The provider's kind.
    pub provider: &'static str,
    /// The current version.
    pub current: KekRef,
    /// Every version, ascending.
    pub versions: Vec<VersionStatus>,
}

/// Makes a new KEK version current.
pub async fn rotate(
    provider: &dyn KeyProvider,
    on_event: &mut (dyn FnMut(KeyEvent<'_>) + Send),
) -> Result<KekRef, KeyError> {
    let kek = provider.rotate().await?;
    on_event(KeyEvent::Rotated { kek: &kek });
    Ok(kek)
}

/// Re-wraps every DEK not on the current KEK version. Failures of single records are
/// counted and reported through `on_event`; store or provider outages end the run with an
/// error (a later run resumes where this one stopped).
pub async fn rewrap_all(
    provider: &dyn KeyProvider,
    state: &Arc<dyn StateStore>,
    on_event: &mut (dyn FnMut(KeyEvent<'_>) + Send),
) -> Result<RewrapSummary, KeyError> {
    let current = provider.current().await?;
    let total = count_all(state).await?;
    on_event(KeyEvent::RewrapStarted {
        total,
        to: &current,
    });
    let mut summary = RewrapSummary::default();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .list(DEK_NAMESPACE, after.as_deref(), PAGE_SIZE)
            .await?;
        for id in &page {
            summary.examined += 1;
            match rewrap_one(provider, state, id, &current, on_event).await {
                Ok(Outcome::Rewrapped) => summary.rewrapped += 1,
                Ok(Outcome::AlreadyCurrent) => summary.already_current += 1,
                Ok(Outcome::Vanished) => summary.vanished += 1,
                Err(e @ (KeyError::State(_) | KeyError::Random | KeyError::KeyringIo { .. })) => {
                    return Err(e);
                }
                Err(error) => {
                    summary.failed += 1;
                    on_event(KeyEvent::RewrapFailed {
                        object: id,
                        error: &error,
                    });
                }
            }
            on_event(KeyEvent::RewrapProgress {
                examined: summary.examined,
            });
        }
        if page.len() < PAGE_SIZE {
            return Ok(summary);
        }
        after = page.last().cloned();
    }
}

enum Outcome {
    Rewrapped,
    AlreadyCurrent,
    Vanished,
}

async fn rewrap_one(
    provider: &dyn KeyProvider,
    state: &Arc<dyn StateStore>,
    id: &str,
    current: &KekRef,
    on_event: &mut (dyn FnMut(KeyEvent<'_>) + Send),
) -> Result<Outcome, KeyError> {
    let object: OpaqueId = id
        .parse()
        .map_err(|_| KeyError::CorruptRecord("record id is not an object id"))?;
    for _ in 0..CAS_ATTEMPTS {
        let Some(stored) = state.get(DEK_NAMESPACE, id).await? else {
            return Ok(Outcome::Vanished);
        };
        let record = DekRecord::decode(&stored.value)?;
        if &record.wrapped.kek == current {
            return Ok(Outcome::AlreadyCurrent);
        }
        let ctx = WrapContext {
            object,
            dek_id: record.dek_id,
            purpose: record.purpose,
        };
        // The unwrapped DEK lives only until the re-wrap below.
        let dek = provider.unwrap(&ctx, &record.wrapped).await?;
        let wrapped = provider.wrap(&ctx, &dek, Some(current)).await?;
        drop(dek);
        let new = DekRecord {
            wrapped,
            ..record.clone()
        };
        let options = PutOptions {
            ttl: None,
            index: vec![new.index_entry()],
        };
        match state
            .put(
                DEK_NAMESPACE,
                id,
                &new.encode(),
                Expect::Version(stored.version),
                options,
            )
            .await?
        {
            CasOutcome::Applied(_) => {
                on_event(KeyEvent::Rewrapped {
                    object: id,
                    from: &record.wrapped.kek,
                    to: current,
                });
                return Ok(Outcome::Rewrapped);
            }
            CasOutcome::Conflict(None) => return Ok(Outcome::Vanished),
            // Someone else rewrote it (another rewrap): read it again.
            CasOutcome::Conflict(Some(_)) => continue,
        }
    }
    Err(KeyError::CorruptRecord(
        "record kept changing during rewrap; run rewrap again",
    ))
}

/// How many DEK records reference `kek` (counted through the KEK index).
pub async fn references(state: &Arc<dyn StateStore>, kek: &KekRef) -> Result<u64, KeyError> {
    let entry = kek_index_entry(kek);
    let mut count = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = state
            .list_index(DEK_NAMESPACE, &entry, after.as_deref(), PAGE_SIZE)
            .await?;
        count += page.len() as u64;
        if page.len() < PAGE_SIZE {
            return Ok(count);
        }
        after = page.last().cloned();
    }
}

/// Destroys a KEK version's material, only when it is not current and no DEK record
/// references it.
pub async fn retire(
    provider: &dyn KeyProvider,
    state: &Arc<dyn StateStore>,
    version: u32,
    on_event: &mut (dyn FnMut(KeyEvent<'_>) + Send),
) -> Result<KekRef, KeyError> {
    let current = provider.current().await?;
    let kek = KekRef {
        id: current.id.clone(),
        version,
    };
    if kek == current {
        return Err(KeyError::RetireCurrent(kek));
    }
    if !provider.versions().await?.iter().any(|v| v.kek == kek) {
        return Err(KeyError::UnknownKek(kek));
    }
    let count = references(state, &kek).await?;
    if count > 0 {
        return Err(KeyError::StillReferenced { kek, count });
    }
    provider.retire(Unreferenced::checked(kek.clone())).await?;
    on_event(KeyEvent::Retired { kek: &kek });
    Ok(kek)
}

/// The provider's versions with the number of DEKs each wraps.
pub async fn status(
    provider: &dyn KeyProvider,
    state: &Arc<dyn StateStore>,
) -> Result<KeyStatus, KeyError> {
    let current = provider.current().await?;
    let mut versions = Vec::new();
    for info in provider.versions().await? {
        let deks = references(state, &info.kek).await?;
        versions.push(VersionStatus { info, deks });
    }
    Ok(KeyStatus {
        provider: provider.kind(),
        current,
        versions,
    })
}

async fn count_all(state: &Arc<dyn StateStore>) -> Result<u64, KeyError> {
    let mut count = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = state
            .list(DEK_NAMESPACE, after.as_deref(), PAGE_SIZE)
            .await?;
        count += page.len() as u64;
        if page.len() < PAGE_SIZE {
            return Ok(count);
        }
        after = page.last().cloned();
    }
}
