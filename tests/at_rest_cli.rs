//! `sallyport keys` end to end over a real keyring file: status, rotate, a refused retire,
//! rewrap (with its audit events), retire, and every object still readable with its blobs
//! untouched.
//!

#![allow(clippy::unwrap_used)]

mod support;

use sallyport::cli::keys as keys_cli;

use std::sync::Arc;

use keys_cli::{KeysCommand, KeysOutcome, run_with_events};
use sallyport::at_rest::{AtRest, AtRestSettings};
use sallyport::blob::{BlobId, BlobStore};
use sallyport::ids::OpaqueId;
use sallyport::keys::admin::KeyEvent;
use sallyport::keys::{KeysSettings, RawKeysConfig};
use sallyport::state::StateStore;

use sallyport::state::memory::MemoryStore;
use support::data::data;
use support::mem_blob::MemBlob;

async fn cmd(
    settings: &KeysSettings,
    state: &Arc<dyn StateStore>,
    command: KeysCommand,
    events: &mut Vec<String>,
) -> (anyhow::Result<KeysOutcome>, String) {
    let mut out = Vec::new();
    let result = run_with_events(command, settings, state.clone(), &mut out, &mut |e| {
        if !matches!(e, KeyEvent::RewrapProgress { .. }) {
            events.push(format!("{e:?}"));
        }
    })
    .await;
    (result, String::from_utf8(out).unwrap())
}

#[test]
fn status_rotate_rewrap_retire() {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let raw: RawKeysConfig = toml::from_str("segment_size = 4096").unwrap();
            let at_rest_settings = AtRestSettings::from_raw(raw.segment_size).unwrap();
            let settings = KeysSettings::from_raw(raw, dir.path()).unwrap();
            let blob = Arc::new(MemBlob::default());
            let state: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
            let at_rest = AtRest::new(
                blob.clone(),
                state.clone(),
                settings.build_provider().unwrap(),
                at_rest_settings.segment_size,
            );
            let mut objects = Vec::new();
            for i in 0..3 {
                let object = OpaqueId::random();
                let plain = data(5000 * i + 1, i as u64);
                let mut w = at_rest.create(object).await.unwrap();
                w.append(&plain).await.unwrap();
                w.finish().await.unwrap();
                objects.push((object, plain));
            }
            let mut before = Vec::new();
            for id in blob.list().await.unwrap() {
                before.push((id, blob.raw(id).unwrap()));
            }
            let mut events = Vec::new();

            let (r, out) = cmd(
                &settings,
                &state,
                KeysCommand::Status { json: false },
                &mut events,
            )
            .await;
            r.unwrap();
            assert!(out.contains("provider: keyring"), "{out}");
            assert!(
                out.lines()
                    .any(|l| l.starts_with("1 ") && l.contains("current") && l.ends_with(" 3")),
                "{out}"
            );

            let (r, out) = cmd(&settings, &state, KeysCommand::Rotate, &mut events).await;
            assert!(matches!(r.unwrap(), KeysOutcome::Rotated(k) if k.version == 2));
            assert!(out.contains(":v2 is now current"), "{out}");

            let (r, _) = cmd(
                &settings,
                &state,
                KeysCommand::Retire { version: 1 },
                &mut events,
            )
            .await;
            let err = format!("{:#}", r.unwrap_err());
            assert!(err.contains("still wraps 3 data key"), "{err}");

            let (r, out) = cmd(
                &settings,
                &state,
                KeysCommand::Rewrap { plain: true },
                &mut events,
            )
            .await;
            match r.unwrap() {
                KeysOutcome::Rewrapped(s) => assert_eq!((s.rewrapped, s.failed), (3, 0)),
                other => panic!("{other:?}"),
            }
            assert!(out.contains("3 re-wrapped"), "{out}");
            assert_eq!(
                events.iter().filter(|e| e.starts_with("Rewrapped")).count(),
                3
            );

            let (r, out) = cmd(
                &settings,
                &state,
                KeysCommand::Rewrap { plain: true },
                &mut events,
            )
            .await;
            r.unwrap();
            assert!(out.contains("0 re-wrapped, 3 already current"), "{out}");

            let (r, _) = cmd(
                &settings,
                &state,
                KeysCommand::Retire { version: 1 },
                &mut events,
            )
            .await;
            assert!(matches!(r.unwrap(), KeysOutcome::Retired(k) if k.version == 1));
            assert!(events.iter().any(|e| e.starts_with("Retired")));

            let (r, out) = cmd(
                &settings,
                &state,
                KeysCommand::Status { json: true },
                &mut events,
            )
            .await;
            r.unwrap();
            let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(json["versions"][0]["state"], "retired");
            assert_eq!(json["versions"][0]["data_keys"], 0);
            assert_eq!(json["versions"][1]["state"], "current");
            assert_eq!(json["versions"][1]["data_keys"], 3);

            for (id, bytes) in before {
                assert_eq!(blob.raw(id).unwrap(), bytes, "{id:?} modified");
            }
            // A provider built afresh from the same settings reads everything.
            let at_rest = AtRest::new(
                blob.clone(),
                state.clone(),
                settings.build_provider().unwrap(),
                at_rest_settings.segment_size,
            );
            for (object, plain) in objects {
                let reader = at_rest.open_reader(object).await.unwrap();
                assert_eq!(
                    &reader.read_range(0, reader.len()).await.unwrap()[..],
                    &plain[..]
                );
                assert!(blob.raw(BlobId::data(object)).is_some());
            }
        });
}

#[test]
fn commands_parse_as_clap_subcommands() {
    use clap::{Parser, Subcommand as _};
    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        keys: KeysCommand,
    }
    let parse =
        |args: &[&str]| Cli::try_parse_from(std::iter::once("keys").chain(args.iter().copied()));
    assert_eq!(parse(&["rotate"]).unwrap().keys, KeysCommand::Rotate);
    assert_eq!(
        parse(&["rewrap", "--plain"]).unwrap().keys,
        KeysCommand::Rewrap { plain: true }
    );
    assert_eq!(
        parse(&["retire", "3"]).unwrap().keys,
        KeysCommand::Retire { version: 3 }
    );
    assert!(parse(&["retire", "x"]).is_err());
    assert!(parse(&["retire"]).is_err());
    assert!(parse(&["shred"]).is_err());
    let _ = KeysCommand::augment_subcommands(clap::Command::new("x"));
}
