//! Conformance cases for `KeyProvider`, each an `async fn(Subject)` that must pass
//! against every provider.

use std::sync::Arc;

use sallyport::keys::{Dek, KekId, KekRef, KekState, KeyError, WrappedDek, admin};
use sallyport::state::StateStore;
use sallyport::state::memory::MemoryStore;

use crate::fixture::{Kind, Subject, context, same_key};

pub async fn kind_and_versions(s: Subject) {
    let expected = match s.kind {
        Kind::Keyring => "keyring",
        Kind::Static => "static",
    };
    assert_eq!(s.provider.kind(), expected);
    let current = s.provider.current().await.unwrap();
    assert_eq!(current.version, 1);
    let versions = s.provider.versions().await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].kek, current);
    assert_eq!(versions[0].state, KekState::Current);
}

pub async fn wrap_unwrap_round_trip(s: Subject) {
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let wrapped = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    assert_eq!(wrapped.kek, s.provider.current().await.unwrap());
    let back = s.provider.unwrap(&ctx, &wrapped).await.unwrap();
    assert!(same_key(&dek, &back));
    // The comparison can fail: another key is not the same key.
    assert!(!same_key(&dek, &Dek::generate().unwrap()));
    // Two wraps of one key differ (fresh nonce) and both unwrap to it.
    let again = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    assert_ne!(again.nonce, wrapped.nonce);
    assert_ne!(again.sealed, wrapped.sealed);
    assert!(same_key(
        &dek,
        &s.provider.unwrap(&ctx, &again).await.unwrap()
    ));
    // An explicit KEK version is honoured.
    let current = s.provider.current().await.unwrap();
    let explicit = s.provider.wrap(&ctx, &dek, Some(&current)).await.unwrap();
    assert_eq!(explicit.kek, current);
}

/// The AAD binds the object id and the DEK id (the purpose has one value today, so there
/// is no other purpose to try).
pub async fn unwrap_is_bound_to_object_and_dek_id(s: Subject) {
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let wrapped = s.provider.wrap(&ctx, &dek, None).await.unwrap();

    let mut other_object = ctx;
    other_object.object = context().object;
    let mut other_dek_id = ctx;
    other_dek_id.dek_id[0] ^= 1;
    for wrong in [other_object, other_dek_id, context()] {
        match s.provider.unwrap(&wrong, &wrapped).await {
            Err(KeyError::UnwrapFailed(kek)) => assert_eq!(kek, wrapped.kek),
            other => panic!("expected UnwrapFailed, got {other:?}"),
        }
    }
    // The right context still works afterwards.
    assert!(s.provider.unwrap(&ctx, &wrapped).await.is_ok());
}

pub async fn unknown_kek_is_refused(s: Subject) {
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let wrapped = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    let current = wrapped.kek.clone();

    let future_version = KekRef {
        id: current.id.clone(),
        version: current.version + 1,
    };
    let other_id = KekRef {
        id: "someone-else".parse::<KekId>().unwrap(),
        version: current.version,
    };
    for unknown in [future_version, other_id] {
        let renamed = WrappedDek {
            kek: unknown.clone(),
            ..wrapped.clone()
        };
        match s.provider.unwrap(&ctx, &renamed).await {
            Err(KeyError::UnknownKek(kek)) => assert_eq!(kek, unknown),
            other => panic!("unwrap under {unknown}: expected UnknownKek, got {other:?}"),
        }
        match s.provider.wrap(&ctx, &dek, Some(&unknown)).await {
            Err(KeyError::UnknownKek(kek)) => assert_eq!(kek, unknown),
            other => panic!("wrap under {unknown}: expected UnknownKek, got {other:?}"),
        }
    }
}

/// New wraps use the new version; wraps under the old one still unwrap. (The static
/// provider's `rotate` is refused; it rotates by configuration, see `Subject::rotate`.)
pub async fn rotation_wraps_new_and_unwraps_old(mut s: Subject) {
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let old = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    let v1 = old.kek.clone();

    let v2 = s.rotate().await;
    assert_eq!(v2.id, v1.id);
    assert_eq!(v2.version, v1.version + 1);
    assert_eq!(s.provider.current().await.unwrap(), v2);
    let states: Vec<_> = s
        .provider
        .versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.kek, v.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (v1.clone(), KekState::Active),
            (v2.clone(), KekState::Current)
        ]
    );

    let new = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    assert_eq!(new.kek, v2);
    assert!(same_key(
        &dek,
        &s.provider.unwrap(&ctx, &new).await.unwrap()
    ));
    assert!(same_key(
        &dek,
        &s.provider.unwrap(&ctx, &old).await.unwrap()
    ));
    // A wrap naming the old version is still possible (rewrap reads under it).
    assert_eq!(
        s.provider.wrap(&ctx, &dek, Some(&v1)).await.unwrap().kek,
        v1
    );
    // Versions are distinct keys: the old wrap relabelled as v2 does not unwrap.
    let relabelled = WrappedDek {
        kek: v2.clone(),
        ..old.clone()
    };
    assert!(matches!(
        s.provider.unwrap(&ctx, &relabelled).await,
        Err(KeyError::UnwrapFailed(_))
    ));
}

/// Retiring through `admin::retire` (what `sallyport keys retire` runs). The keyring
/// destroys the version's material: it stays listed as retired and its wraps are refused.
/// Static KEKs are read-only: `retire` answers `ReadOnly` and changes nothing (an operator
/// retires a static version by removing it from the configuration).
pub async fn retire(mut s: Subject) {
    let state: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let old = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    let v1 = old.kek.clone();
    let v2 = s.rotate().await;

    // The current version can never be retired.
    assert!(matches!(
        admin::retire(&*s.provider, &state, v2.version, &mut |_| {}).await,
        Err(KeyError::RetireCurrent(kek)) if kek == v2
    ));
    // Nor one that does not exist.
    assert!(matches!(
        admin::retire(&*s.provider, &state, 9, &mut |_| {}).await,
        Err(KeyError::UnknownKek(_))
    ));

    let outcome = admin::retire(&*s.provider, &state, v1.version, &mut |_| {}).await;
    match s.kind {
        Kind::Keyring => {
            assert_eq!(outcome.unwrap(), v1);
            let states: Vec<_> = s
                .provider
                .versions()
                .await
                .unwrap()
                .into_iter()
                .map(|v| (v.kek, v.state))
                .collect();
            assert_eq!(
                states,
                vec![
                    (v1.clone(), KekState::Retired),
                    (v2.clone(), KekState::Current)
                ]
            );
            match s.provider.unwrap(&ctx, &old).await {
                Err(KeyError::RetiredKek(kek)) => assert_eq!(kek, v1),
                other => panic!("expected RetiredKek, got {other:?}"),
            }
            assert!(matches!(
                s.provider.wrap(&ctx, &dek, Some(&v1)).await,
                Err(KeyError::RetiredKek(_))
            ));
        }
        Kind::Static => {
            assert!(matches!(outcome, Err(KeyError::ReadOnly(_))), "{outcome:?}");
            assert!(same_key(
                &dek,
                &s.provider.unwrap(&ctx, &old).await.unwrap()
            ));
        }
    }
    // The current version is untouched either way.
    let new = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    assert!(same_key(
        &dek,
        &s.provider.unwrap(&ctx, &new).await.unwrap()
    ));
}

/// Every flipped bit of the nonce or sealed bytes, and sealed bytes from another wrap,
/// are refused.
pub async fn tampered_or_foreign_wrapped_keys_are_refused(s: Subject) {
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let wrapped = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    let refused = |r: Result<Dek, KeyError>| matches!(r, Err(KeyError::UnwrapFailed(_)));

    for bit in 0..wrapped.sealed.len() * 8 {
        let mut bad = wrapped.clone();
        bad.sealed[bit / 8] ^= 1 << (bit % 8);
        assert!(
            refused(s.provider.unwrap(&ctx, &bad).await),
            "sealed bit {bit}"
        );
    }
    for bit in 0..wrapped.nonce.len() * 8 {
        let mut bad = wrapped.clone();
        bad.nonce[bit / 8] ^= 1 << (bit % 8);
        assert!(
            refused(s.provider.unwrap(&ctx, &bad).await),
            "nonce bit {bit}"
        );
    }
    // Another DEK's wrap for the same context, spliced in.
    let other = s
        .provider
        .wrap(&ctx, &Dek::generate().unwrap(), None)
        .await
        .unwrap();
    let spliced = WrappedDek {
        nonce: wrapped.nonce,
        ..other
    };
    assert!(refused(s.provider.unwrap(&ctx, &spliced).await));
    assert!(refused(
        s.provider
            .unwrap(
                &ctx,
                &WrappedDek {
                    sealed: [0; 48],
                    ..wrapped.clone()
                }
            )
            .await
    ));
}

/// Neither the provider nor the DEKs and wrapped DEKs it hands out print key material.
pub async fn debug_shows_no_key_material(mut s: Subject) {
    s.rotate().await;
    let ctx = context();
    let dek = Dek::generate().unwrap();
    let wrapped = s.provider.wrap(&ctx, &dek, None).await.unwrap();
    let shown = format!(
        "{:?} {:#?} {:?} {:?} {:?}",
        s.provider,
        s.provider,
        dek,
        wrapped,
        s.provider.versions().await.unwrap()
    );
    let materials = s.materials_b64();
    assert_eq!(materials.len(), 2);
    for b64 in materials {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap();
        assert!(!shown.contains(&b64), "base64 KEK material in {shown}");
        assert!(!shown.contains(&hex::encode(&bytes)), "hex KEK material");
        assert!(
            !shown.contains(&format!("{:?}", &bytes[..8])),
            "raw KEK bytes"
        );
    }
    assert!(
        !shown.contains(&hex::encode(wrapped.sealed)),
        "sealed bytes"
    );
    assert!(!shown.contains(&format!("{:?}", &wrapped.sealed[..8])));
    assert!(shown.contains("redacted"), "{shown}");
}
