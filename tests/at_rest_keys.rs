//! The key hierarchy end to end: the keyring file (creation, permissions, reload, bad
//! files), and rotate → rewrap → retire over real objects without touching object data.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use sallyport::at_rest::{AtRest, Reopened, SegmentSize};
use sallyport::blob::{BlobId, BlobStore};
use sallyport::ids::OpaqueId;
use sallyport::keys::admin::{self, KeyEvent};
use sallyport::keys::keyring::KeyringFile;
use sallyport::keys::{KekState, KeyError, KeyProvider};
use sallyport::state::StateStore;

use support::data::data;
use support::mem_blob::MemBlob;
use support::mem_state::FaultyState;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn keyring_is_created_0600_and_reloaded_after_a_rotate_elsewhere() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("keyring.json");
        let a = KeyringFile::open_or_create(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v1 = a.current().await.unwrap();
        assert_eq!(v1.version, 1);

        // A second instance (the CLI) rotates; the first sees it without a restart.
        let b = KeyringFile::open_or_create(&path, false).unwrap();
        assert_eq!(b.current().await.unwrap(), v1);
        let v2 = b.rotate().await.unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.id, v1.id);
        assert_eq!(a.current().await.unwrap(), v2);
        let states: Vec<_> = a
            .versions()
            .await
            .unwrap()
            .iter()
            .map(|v| v.state)
            .collect();
        assert_eq!(states, vec![KekState::Active, KekState::Current]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "rotation keeps the mode");

        // Debug output names the file, never key material.
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let key = json["versions"][0]["key"].as_str().unwrap().to_owned();
        assert!(!format!("{a:?}").contains(&key));
    });
}

#[test]
fn keyring_readable_by_others_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    KeyringFile::open_or_create(&path, false).unwrap();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match KeyringFile::open_or_create(&path, false) {
            Err(KeyError::SecretFile(e)) => assert_eq!(e.mode(), Some(mode)),
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert!(KeyringFile::open_or_create(&path, true).is_ok());
    }
    // Writable by group or others: refused even when readable is allowed (the old check
    // let 0660 through with the allow flag).
    for mode in [0o660, 0o606] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match KeyringFile::open_or_create(&path, true) {
            Err(KeyError::SecretFile(e)) => assert_eq!(e.mode(), Some(mode)),
            other => panic!("mode {mode:o}: {other:?}"),
        }
    }
}

#[test]
fn bad_keyring_files_are_specific_errors_and_leftover_temp_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let write = |text: &str| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cases = [
        ("not json", "expected"),
        (
            r#"{"format":"other","kek_id":"k","current":1,"versions":[]}"#,
            "format",
        ),
        (
            &*format!(
                r#"{{"format":"sallyport-keyring/v1","kek_id":"k","current":2,"versions":[{{"version":1,"created_unix":0,"key":"{key}"}}]}}"#
            ),
            "not defined",
        ),
        (
            &*format!(
                r#"{{"format":"sallyport-keyring/v1","kek_id":"K!","current":1,"versions":[{{"version":1,"created_unix":0,"key":"{key}"}}]}}"#
            ),
            "kek_id",
        ),
        (
            r#"{"format":"sallyport-keyring/v1","kek_id":"k","current":1,"versions":[{"version":1,"created_unix":0,"key":"c2hvcnQ="}]}"#,
            "32 bytes",
        ),
        (
            &*format!(
                r#"{{"format":"sallyport-keyring/v1","kek_id":"k","current":1,"extra":1,"versions":[{{"version":1,"created_unix":0,"key":"{key}"}}]}}"#
            ),
            "unknown field",
        ),
        (
            &*format!(
                r#"{{"format":"sallyport-keyring/v1","kek_id":"k","current":1,"versions":[{{"version":1,"created_unix":0,"key":"{key}"}},{{"version":1,"created_unix":0,"key":"{key}"}}]}}"#
            ),
            "twice",
        ),
        (
            r#"{"format":"sallyport-keyring/v1","kek_id":"k","current":1,"versions":[{"version":1,"created_unix":0,"key":null}]}"#,
            "retired",
        ),
    ];
    for (text, expected) in cases {
        write(text);
        match KeyringFile::open_or_create(&path, false) {
            Err(KeyError::KeyringFormat { reason, .. }) => {
                assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
                assert!(!reason.contains(key), "key material in an error");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    write(&format!(
        r#"{{"format":"sallyport-keyring/v1","kek_id":"k","current":1,"versions":[{{"version":1,"created_unix":0,"key":"{key}"}}]}}"#
    ));
    let temp = dir.path().join(".keyring.json.new");
    std::fs::write(&temp, "leftover secret").unwrap();
    KeyringFile::open_or_create(&path, false).unwrap();
    assert!(!temp.exists(), "a stale temporary keyring must be removed");
}

async fn snapshot(blob: &MemBlob) -> BTreeMap<BlobId, Vec<u8>> {
    let mut out = BTreeMap::new();
    for id in blob.list().await.unwrap() {
        out.insert(id, blob.raw(id).unwrap());
    }
    out
}

#[test]
fn rotate_then_rewrap_leaves_every_object_readable_with_no_blob_modified() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let keys: Arc<dyn KeyProvider> =
            Arc::new(KeyringFile::open_or_create(&dir.path().join("keyring.json"), false).unwrap());
        let blob = Arc::new(MemBlob::default());
        let mem_state = Arc::new(FaultyState::default());
        let state: Arc<dyn StateStore> = mem_state.clone();
        let at_rest = AtRest::new(
            blob.clone(),
            state.clone(),
            keys.clone(),
            SegmentSize::new(64).unwrap(),
        );
        let mut objects = Vec::new();
        for i in 0..7 {
            let object = OpaqueId::random();
            let plain = data(100 * i + 3, i as u64);
            let mut w = at_rest.create(object).await.unwrap();
            w.append(&plain).await.unwrap();
            w.finish().await.unwrap();
            objects.push((object, plain));
        }
        // One object still being uploaded.
        let open = OpaqueId::random();
        let open_plain = data(150, 99);
        let mut w = at_rest.create(open).await.unwrap();
        w.append(&open_plain[..70]).await.unwrap();
        w.commit().await.unwrap();
        drop(w);

        let before = snapshot(&blob).await;
        let v1 = keys.current().await.unwrap();
        let mut events = Vec::new();
        let v2 = admin::rotate(&*keys, &mut |e| events.push(format!("{e:?}")))
            .await
            .unwrap();
        assert_eq!(v2.version, 2);

        let status = admin::status(&*keys, &state).await.unwrap();
        let counts: Vec<_> = status
            .versions
            .iter()
            .map(|v| (v.info.kek.version, v.deks))
            .collect();
        assert_eq!(counts, vec![(1, 8), (2, 0)]);
        match admin::retire(&*keys, &state, 1, &mut |_| {}).await {
            Err(KeyError::StillReferenced { count, .. }) => assert_eq!(count, 8),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            admin::retire(&*keys, &state, 2, &mut |_| {}).await,
            Err(KeyError::RetireCurrent(_))
        ));

        // A rewrap interrupted by a state-store outage after 3 records...
        mem_state.fail_puts_after(3);
        let interrupted = admin::rewrap_all(&*keys, &state, &mut |_| {}).await;
        assert!(matches!(interrupted, Err(KeyError::State(_))));
        mem_state.heal();
        // ...resumes: the 3 done are skipped, the rest re-wrapped.
        let mut rewrapped = Vec::new();
        let summary = admin::rewrap_all(&*keys, &state, &mut |e| {
            if let KeyEvent::Rewrapped { object, from, to } = e {
                assert_eq!(from, &v1);
                assert_eq!(to, &v2);
                rewrapped.push(object.to_owned());
            }
        })
        .await
        .unwrap();
        assert_eq!(summary.examined, 8);
        assert_eq!(summary.already_current, 3);
        assert_eq!(summary.rewrapped, 5);
        assert_eq!(summary.failed, 0);
        assert_eq!(rewrapped.len(), 5);
        let again = admin::rewrap_all(&*keys, &state, &mut |_| {})
            .await
            .unwrap();
        assert_eq!((again.rewrapped, again.already_current), (0, 8));

        assert_eq!(
            snapshot(&blob).await,
            before,
            "rewrap must not touch object data"
        );

        // Nothing references v1 any more: retire it (its material is destroyed).
        let retired = admin::retire(&*keys, &state, 1, &mut |e| events.push(format!("{e:?}")))
            .await
            .unwrap();
        assert_eq!(retired, v1);
        assert!(events.iter().any(|e| e.contains("Rotated")));
        assert!(events.iter().any(|e| e.contains("Retired")));
        let text = std::fs::read_to_string(dir.path().join("keyring.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(json["versions"][0]["key"].is_null());

        for (object, plain) in &objects {
            let reader = at_rest.open_reader(*object).await.unwrap();
            let got = reader.read_range(0, reader.len()).await.unwrap();
            assert_eq!(&got[..], &plain[..]);
        }
        let mut w = match at_rest.open_writer(open).await.unwrap() {
            Reopened::Open { writer, .. } => *writer,
            Reopened::Finished(_) => panic!(),
        };
        w.append(&open_plain[70..]).await.unwrap();
        w.finish().await.unwrap();
        let reader = at_rest.open_reader(open).await.unwrap();
        assert_eq!(
            &reader.read_range(0, 150).await.unwrap()[..],
            &open_plain[..]
        );
    });
}

#[test]
fn rewrap_reports_a_record_it_cannot_unwrap_and_carries_on() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let keys: Arc<dyn KeyProvider> =
            Arc::new(KeyringFile::open_or_create(&dir.path().join("k.json"), false).unwrap());
        let blob = Arc::new(MemBlob::default());
        let mem_state = Arc::new(FaultyState::default());
        let state: Arc<dyn StateStore> = mem_state.clone();
        let at_rest = AtRest::new(
            blob,
            state.clone(),
            keys.clone(),
            SegmentSize::new(64).unwrap(),
        );
        let mut ids = Vec::new();
        for _ in 0..3 {
            let object = OpaqueId::random();
            at_rest
                .create(object)
                .await
                .unwrap()
                .finish()
                .await
                .unwrap();
            ids.push(object);
        }
        // Corrupt one wrapped DEK (its sealed bytes).
        let ns = sallyport::keys::record::DEK_NAMESPACE;
        let mut bad = mem_state.raw(ns, &ids[1].to_string()).await.unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        mem_state.tamper(ns, &ids[1].to_string(), bad).await;
        keys.rotate().await.unwrap();
        let mut failed = Vec::new();
        let summary = admin::rewrap_all(&*keys, &state, &mut |e| {
            if let KeyEvent::RewrapFailed { object, error } = e {
                failed.push((object.to_owned(), error.to_string()));
            }
        })
        .await
        .unwrap();
        assert_eq!((summary.rewrapped, summary.failed), (2, 1));
        assert_eq!(failed[0].0, ids[1].to_string());
        assert!(
            failed[0].1.contains("does not authenticate"),
            "{}",
            failed[0].1
        );
    });
}

#[test]
fn static_keks_from_secret_files_respect_permissions() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("kek-v1");
        std::fs::write(&key_path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = |allow: bool| {
            format!(
                "provider = \"static\"\nstatic_kek_id = \"prod\"\nstatic_current_version = 1\n\
                 danger_allow_world_readable_secrets = {allow}\n\
                 [[static_keks]]\nversion = 1\nkey_file = \"kek-v1\"\n"
            )
        };
        let settings = |allow: bool| {
            let raw: sallyport::keys::RawKeysConfig = toml::from_str(&config(allow)).unwrap();
            sallyport::keys::KeysSettings::from_raw(raw, dir.path()).unwrap()
        };
        let keys = settings(false).build_provider().unwrap();
        assert_eq!(keys.kind(), "static");
        assert!(matches!(keys.rotate().await, Err(KeyError::ReadOnly(_))));
        let at_rest = AtRest::new(
            Arc::new(MemBlob::default()),
            Arc::new(FaultyState::default()),
            keys,
            SegmentSize::new(4096).unwrap(),
        );
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        w.append(b"static").await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(
            &at_rest
                .open_reader(object)
                .await
                .unwrap()
                .read_range(0, 6)
                .await
                .unwrap()[..],
            b"static"
        );

        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            settings(false).build_provider(),
            Err(KeyError::SecretFile(_))
        ));
        assert!(settings(true).build_provider().is_ok());
        std::fs::write(&key_path, "not base64 of 32 bytes").unwrap();
        match settings(true).build_provider() {
            Err(KeyError::KeyringFormat { reason, .. }) => assert!(reason.contains("32 bytes")),
            other => panic!("{other:?}"),
        }
    });
}

/// Concurrent rotations from separate keyring handles (as from separate processes: the
/// advisory lock is per open file) never lose a version.
#[test]
fn concurrent_rotations_never_lose_a_version() {
    use sallyport::keys::KeyProvider as _;
    use sallyport::keys::keyring::KeyringFile;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    KeyringFile::open_or_create(&path, false).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let ring = KeyringFile::open(&path, false).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(ring.rotate()).unwrap()
            })
        })
        .collect();
    let mut made: Vec<u32> = threads
        .into_iter()
        .map(|t| t.join().unwrap().version)
        .collect();
    made.sort_unstable();
    assert_eq!(
        made,
        (2..=9).collect::<Vec<_>>(),
        "each rotation got its own version"
    );
    let ring = KeyringFile::open(&path, false).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let versions = rt.block_on(ring.versions()).unwrap();
    assert_eq!(versions.len(), 9, "{versions:?}");
    assert_eq!(rt.block_on(ring.current()).unwrap().version, 9);
}
