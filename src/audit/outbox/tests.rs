#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::audit::chain;

fn row(time: &str, index: u64) -> Row {
    Row {
        time: time.into(),
        action: "upload.chunk_accepted".into(),
        outcome: "success".into(),
        actor: serde_json::json!({"kind": "client", "name": "clinic-a", "auth_method": "bearer_token"}),
        request_id: Some("req-1".into()),
        client_addr: Some("192.0.2.7".into()),
        peer_addr: None,
        subject: Some("u1".into()),
        details: serde_json::json!({"upload": "u1", "index": index, "offset": 0, "length": 5}),
    }
}

/// The line the writer seals for `r` at `seq`.
fn sealed(r: &Row, seq: u64) -> Vec<u8> {
    r.seal(seq, "host:1", &chain::GENESIS_PREV).unwrap().0
}

#[test]
fn a_sealed_entry_has_the_fingerprint_of_its_row() {
    let r = row("2026-12-07T10:00:00.123Z", 3);
    let line = sealed(&r, 42);
    assert_eq!(Row::fingerprint_of_line(&line), Some(r.fingerprint()));
    // Any other field, and the fingerprints differ.
    let mut other = r.clone();
    other.details["index"] = 4.into();
    assert_ne!(Row::fingerprint_of_line(&line), Some(other.fingerprint()));
    let mut later = r.clone();
    later.time = "2026-12-07T10:00:00.124Z".into();
    assert_ne!(Row::fingerprint_of_line(&line), Some(later.fingerprint()));
    let mut with_peer = r.clone();
    with_peer.peer_addr = Some("10.0.0.1".into());
    let peer_line = sealed(&with_peer, 43);
    assert_eq!(
        Row::fingerprint_of_line(&peer_line),
        Some(with_peer.fingerprint())
    );
    assert_ne!(with_peer.fingerprint(), r.fingerprint());
}

#[test]
fn an_entry_time_is_read_without_parsing_the_entry() {
    let line = sealed(&row("2026-12-07T10:00:00.123Z", 3), 7);
    assert_eq!(entry_time(&line), parse_time("2026-12-07T10:00:00.123Z"));
    assert_eq!(entry_time(b"{\"v\":1}"), None);
    assert_eq!(entry_time(b"{\"time\":\"unterminated"), None);
    assert_eq!(entry_time(b"{\"time\":\"yesterday\"}"), None);
}

#[test]
fn a_row_round_trips_and_garbage_is_refused() {
    let r = row("2026-12-07T10:00:00.123Z", 1);
    assert_eq!(Row::decode(&r.encode().unwrap()).unwrap(), r);
    assert!(Row::decode(b"{\"time\":1}").is_err());
    assert!(Row::decode(b"").is_err());
    assert_eq!(Row::fingerprint_of_line(b"not json"), None);
}

#[test]
fn undelivered_keeps_the_rows_the_chain_lacks_in_order() {
    let rows: Vec<(String, Row)> = (0..4)
        .map(|i| (format!("k{i}"), row("2026-12-07T10:00:00.000Z", i)))
        .collect();
    let in_chain: HashSet<String> = [rows[1].1.fingerprint(), rows[3].1.fingerprint()]
        .into_iter()
        .collect();
    let left: Vec<&str> = undelivered(&rows, &in_chain)
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(left, vec!["k0", "k2"]);
}

#[test]
fn the_chain_is_searched_back_from_the_oldest_row_less_the_margin() {
    let rows = vec![
        ("a".to_owned(), row("2026-12-07T10:00:00.000Z", 0)),
        ("b".to_owned(), row("2026-12-07T09:00:00.000Z", 1)),
        ("c".to_owned(), row("not a time", 2)),
    ];
    let from = look_back_from(&rows).unwrap();
    assert_eq!(from, parse_time("2026-12-07T08:59:00.000Z").unwrap());
    assert_eq!(look_back_from(&rows[2..]), None);
}

#[test]
fn keys_sort_in_staging_order_and_after_an_earlier_process() {
    let earlier = Keys::new();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let keys = Keys::new();
    let a = earlier.next();
    let (b, c) = (keys.next(), keys.next());
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(b.len(), 24);
    assert!(b.bytes().all(|c| c.is_ascii_hexdigit()));
}

#[tokio::test]
async fn the_chain_is_searched_for_the_wanted_entries_only_back_to_the_time_given() {
    use crate::audit::journal::Journal;
    use crate::audit::log::AuditLog;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "audit", 1 << 20).unwrap();
    // Five entries a minute apart, 10:00 to 10:04 (chain hashes do not matter here).
    let rows: Vec<Row> = (0..5)
        .map(|i| row(&format!("2026-12-07T10:0{i}:00.000Z"), i))
        .collect();
    let lines: Vec<Vec<u8>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| sealed(r, i as u64 + 1))
        .collect();
    journal.append(1, &lines).await.unwrap();
    let chunk: HashSet<String> = ["upload.chunk_accepted".to_owned()].into();
    let wanted: HashSet<String> = [rows[0].fingerprint(), rows[3].fingerprint()].into();
    let all = parse_time("2026-12-07T09:00:00.000Z").unwrap();

    // Both found when the search goes back far enough.
    assert_eq!(
        chain_holds(&journal, all, &wanted, &chunk).await.unwrap(),
        wanted
    );
    // Not the one older than the time given (the page that crosses it is still read
    // whole, so the search stops before the older pages only: one page here).
    let later = parse_time("2026-12-07T10:02:30.000Z").unwrap();
    let found = chain_holds(&journal, later, &wanted, &chunk).await.unwrap();
    assert!(found.contains(&rows[3].fingerprint()));
    // Entries of other actions are not looked at.
    let other: HashSet<String> = ["link.issued".to_owned()].into();
    assert!(
        chain_holds(&journal, all, &wanted, &other)
            .await
            .unwrap()
            .is_empty()
    );
    // A fingerprint nobody wrote is not found; an empty chain holds nothing.
    let never: HashSet<String> = [row("2026-12-07T10:00:00.000Z", 99).fingerprint()].into();
    assert!(
        chain_holds(&journal, all, &never, &chunk)
            .await
            .unwrap()
            .is_empty()
    );
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = Journal::open(empty_dir.path(), "audit", 1 << 20).unwrap();
    assert!(
        chain_holds(&empty, all, &wanted, &chunk)
            .await
            .unwrap()
            .is_empty()
    );
}
