//! The `KeyProvider` conformance suite: every case in `key_provider/cases.rs` is written
//! once against a [`Subject`](fixture::Subject) and run against both providers in
//! `src/keys/`, each built the way the gateway builds it, from a `[keys]` section:
//!
//! * `keyring`: the keyring file in a temp data directory, created on first use;
//! * `static`: KEKs from configuration (inline base64 of known test material).
//!
//! Where the two differ by design (the static provider is read-only: rotation is a
//! configuration change and retirement is removing a version from it), the case says so
//! and checks each provider's own behaviour.

#![allow(clippy::unwrap_used)]

#[path = "key_provider/cases.rs"]
mod cases;
#[path = "key_provider/fixture.rs"]
mod fixture;

/// Generates one test per case for each provider.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod keyring {
            $(
                #[tokio::test]
                async fn $case() {
                    crate::cases::$case(crate::fixture::Subject::keyring()).await;
                }
            )*
        }
        mod static_keks {
            $(
                #[tokio::test]
                async fn $case() {
                    crate::cases::$case(crate::fixture::Subject::static_keks()).await;
                }
            )*
        }
    };
}

suite!(
    kind_and_versions,
    wrap_unwrap_round_trip,
    unwrap_is_bound_to_object_and_dek_id,
    unknown_kek_is_refused,
    rotation_wraps_new_and_unwraps_old,
    retire,
    tampered_or_foreign_wrapped_keys_are_refused,
    debug_shows_no_key_material,
);
