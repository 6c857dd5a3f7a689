//! The providers under test, built from `[keys]` configuration as `serve` builds them, and
//! what the cases need to know about each: how to rotate it, and its KEK material (to
//! check it never shows in `Debug` output).

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sallyport::at_rest::SegmentSize;
use sallyport::at_rest::format::Header;
use sallyport::ids::OpaqueId;
use sallyport::keys::{
    DEK_ID_LEN, Dek, DekPurpose, KekRef, KeyError, KeyProvider, KeysSettings, RawKeysConfig,
    WrapContext,
};

const STATIC_KEK_ID: &str = "conformance";

pub enum Kind {
    Keyring,
    Static,
}

pub struct Subject {
    pub provider: Arc<dyn KeyProvider>,
    pub kind: Kind,
    dir: tempfile::TempDir,
    /// The static provider's material, version `i + 1` at `i`.
    static_versions: Vec<[u8; 32]>,
}

impl Subject {
    /// The keyring-file provider, created in a fresh data directory.
    pub fn keyring() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let provider = build(dir.path(), "provider = \"keyring\"\n");
        Self {
            provider,
            kind: Kind::Keyring,
            dir,
            static_versions: Vec::new(),
        }
    }

    /// The static provider with one configured version.
    pub fn static_keks() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let versions = vec![material(1)];
        let provider = build(dir.path(), &static_toml(&versions));
        Self {
            provider,
            kind: Kind::Static,
            dir,
            static_versions: versions,
        }
    }

    /// Adds a KEK version and makes it current, the way an operator does with this
    /// provider: `keys rotate` for the keyring; for static KEKs (whose `rotate` is refused)
    /// a new version in the configuration and a restart, i.e. a new provider.
    pub async fn rotate(&mut self) -> KekRef {
        match self.kind {
            Kind::Keyring => self.provider.rotate().await.unwrap(),
            Kind::Static => {
                assert!(matches!(
                    self.provider.rotate().await,
                    Err(KeyError::ReadOnly(_))
                ));
                let next = self.static_versions.len() as u8 + 1;
                self.static_versions.push(material(next));
                self.provider = build(self.dir.path(), &static_toml(&self.static_versions));
                self.provider.current().await.unwrap()
            }
        }
    }

    /// Every KEK material byte string the provider holds, as base64 as it is configured
    /// or stored.
    pub fn materials_b64(&self) -> Vec<String> {
        match self.kind {
            Kind::Static => self
                .static_versions
                .iter()
                .map(|m| STANDARD.encode(m))
                .collect(),
            Kind::Keyring => {
                let text = std::fs::read_to_string(self.dir.path().join("keyring.json")).unwrap();
                let file: serde_json::Value = serde_json::from_str(&text).unwrap();
                let keys: Vec<String> = file["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v["key"].as_str().map(str::to_owned))
                    .collect();
                assert!(!keys.is_empty(), "the keyring file holds material");
                keys
            }
        }
    }
}

/// A fresh wrap context.
pub fn context() -> WrapContext {
    let mut dek_id = [0u8; DEK_ID_LEN];
    dek_id.copy_from_slice(&OpaqueId::random().as_bytes()[..DEK_ID_LEN]);
    WrapContext {
        object: OpaqueId::random(),
        dek_id,
        purpose: DekPurpose::ObjectData,
    }
}

/// Whether two DEKs are the same key. DEK bytes are not public, so this asks the at-rest
/// format: a header made with `a` unlocks with `b` only if `b` derives the same key
/// commitment, i.e. is the same key.
pub fn same_key(a: &Dek, b: &Dek) -> bool {
    let ctx = context();
    let segment = SegmentSize::new(4096).unwrap();
    let (header, _) = Header::create(ctx.object, ctx.dek_id, segment, a).unwrap();
    header.unlock(ctx.object, &ctx.dek_id, b).is_ok()
}

/// Distinct, fixed test material for static version `v`.
fn material(v: u8) -> [u8; 32] {
    std::array::from_fn(|i| v.wrapping_mul(37).wrapping_add(i as u8).wrapping_mul(11))
}

fn static_toml(versions: &[[u8; 32]]) -> String {
    let mut text = format!(
        "provider = \"static\"\nstatic_kek_id = \"{STATIC_KEK_ID}\"\nstatic_current_version = {}\n",
        versions.len()
    );
    for (i, m) in versions.iter().enumerate() {
        text.push_str(&format!(
            "[[static_keks]]\nversion = {}\nkey = \"{}\"\n",
            i + 1,
            STANDARD.encode(m)
        ));
    }
    text
}

fn build(data_dir: &Path, toml_text: &str) -> Arc<dyn KeyProvider> {
    let raw: RawKeysConfig = toml::from_str(toml_text).unwrap();
    KeysSettings::from_raw(raw, data_dir)
        .unwrap()
        .build_provider()
        .unwrap()
}
