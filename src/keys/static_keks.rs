//! KEKs fixed by configuration: material given inline (base64) or in secret files.
//!
//! For deployments where KEK material is provisioned from outside (a secret manager that
//! writes files, an orchestrator's secrets): the gateway only reads it. Rotation means
//! adding a version to the configuration and changing `current_version`, then running
//! `sallyport keys rewrap`; [`KeyProvider::rotate`] and [`KeyProvider::retire`] answer
//! [`KeyError::ReadOnly`].
//!
//! Not here: parsing the `[keys]` section (the `config` module, which builds this provider).

use async_trait::async_trait;

use super::kek_set::KekSet;
use super::{
    Dek, KekRef, KekVersionInfo, KeyError, KeyProvider, Unreferenced, WrapContext, WrappedDek,
};

/// A read-only provider over a [`KekSet`] built from configuration.
#[derive(Debug)]
pub struct StaticKeks {
    set: KekSet,
}

impl StaticKeks {
    /// A provider over `set`.
    pub fn new(set: KekSet) -> Self {
        Self { set }
    }
}

#[async_trait]
impl KeyProvider for StaticKeks {
    fn kind(&self) -> &'static str {
        "static"
    }

    async fn current(&self) -> Result<KekRef, KeyError> {
        Ok(self.set.current_ref())
    }

    async fn versions(&self) -> Result<Vec<KekVersionInfo>, KeyError> {
        Ok(self.set.versions_info())
    }

    async fn wrap(
        &self,
        ctx: &WrapContext,
        dek: &Dek,
        kek: Option<&KekRef>,
    ) -> Result<WrappedDek, KeyError> {
        self.set.wrap(ctx, dek, kek)
    }

    async fn unwrap(&self, ctx: &WrapContext, wrapped: &WrappedDek) -> Result<Dek, KeyError> {
        self.set.unwrap(ctx, wrapped)
    }

    async fn rotate(&self) -> Result<KekRef, KeyError> {
        Err(KeyError::ReadOnly(
            "add a version to [keys] static_keks, set current_version, restart, then rewrap",
        ))
    }

    async fn retire(&self, _kek: Unreferenced) -> Result<(), KeyError> {
        Err(KeyError::ReadOnly(
            "remove the version from [keys] static_keks once no DEK references it",
        ))
    }
}
