use std::os::unix::fs::FileExt;
use std::os::unix::fs::PermissionsExt;

use super::*;
use record::SegmentHeader;

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("{{\"seq\":{i}}}").into_bytes())
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

async fn all(j: &Journal) -> Vec<LogEntry> {
    j.read(1, READ_MAX).await.unwrap()
}

#[tokio::test]
async fn appends_read_back_across_segments_and_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit").join("audit");
    // Small segments: a few batches each.
    let j = Journal::open(&dir, "audit", 300).unwrap();
    assert_eq!(j.head().await.unwrap(), None);
    for start in (1..40).step_by(3) {
        let batch = entries(start..start + 3);
        assert_eq!(
            j.append(start, &batch).await.unwrap(),
            AppendOutcome::Appended { first: start }
        );
    }
    let got = all(&j).await;
    assert_eq!(got.len(), 39);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.bytes, entries(e.seq..e.seq + 1)[0]);
    }
    assert_eq!(j.read(17, 5).await.unwrap(), got[16..21]);
    assert_eq!(j.read(0, 2).await.unwrap(), got[..2]);
    assert!(j.read(40, 10).await.unwrap().is_empty());
    assert!(j.read(1, 0).await.unwrap().is_empty());
    let segs = segments::list(&dir).unwrap();
    assert!(segs.len() > 3, "{segs:?}");
    assert_eq!(
        segs[0].path.file_name().unwrap(),
        "00000000000000000001.seg"
    );
    assert_eq!(mode(&dir), 0o700);
    assert!(segs.iter().all(|s| mode(&s.path) == 0o600));
    let stats = j.stats();
    assert_eq!((stats.appends, stats.entries), (13, 39));
    assert_eq!(stats.syncs, 13 + segs.len() as u64);

    // A stale expected_next changes nothing and answers with the head.
    let head = j.head().await.unwrap();
    assert_eq!(head.as_ref().map(|h| h.seq), Some(39));
    assert_eq!(
        j.append(5, &entries(5..6)).await.unwrap(),
        AppendOutcome::Conflict(head.clone())
    );
    drop(j);

    let j = Journal::open(&dir, "audit", 300).unwrap();
    assert_eq!(j.head().await.unwrap(), head);
    assert_eq!(all(&j).await, got);
    assert_eq!(
        j.append(40, &entries(40..41)).await.unwrap(),
        AppendOutcome::Appended { first: 40 }
    );
}

#[tokio::test]
async fn reads_from_any_seq_of_the_active_segment_start_at_a_mark_near_it() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    // Uneven batches, as group commit makes them.
    let mut next = 1;
    for size in (0..400).map(|i| 1 + (i * 7 % 5)) {
        j.append(next, &entries(next..next + size)).await.unwrap();
        next += size;
    }
    let got = all(&j).await;
    assert_eq!(got.len() as u64, next - 1);
    // Every start, in a scrambled order (the cursor helps none of them).
    for from in (1..next).map(|i| i * 389 % (next - 1) + 1) {
        let want: Vec<_> = got[from as usize - 1..].iter().take(3).cloned().collect();
        assert_eq!(j.read(from, 3).await.unwrap(), want, "from {from}");
    }
    let marks = {
        let inner = j.inner.lock().unwrap();
        inner.active.as_ref().unwrap().marks.clone()
    };
    assert_eq!(marks[0], (1, HEADER_LEN as u64));
    assert!(
        marks.windows(2).all(|w| w[1].0 >= w[0].0 + MARK_EVERY),
        "{marks:?}"
    );
    assert!(
        marks.len() as u64 >= (next - 1) / (MARK_EVERY + 5),
        "{}",
        marks.len()
    );
    // A read from past the last mark does not decode the segment from its start: it
    // still answers with the first record damaged (a whole read reports the damage).
    let seg = &segments::list(tmp.path()).unwrap()[0];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap()
        .write_at(b"\xff\xff\xff\xff", HEADER_LEN as u64 + 4)
        .unwrap();
    let (last_mark, _) = *marks.last().unwrap();
    assert_eq!(
        j.read(last_mark + 1, 2).await.unwrap(),
        got[last_mark as usize..last_mark as usize + 2]
    );
    assert!(j.read(1, 2).await.is_err());
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    assert!(matches!(
        j.append(1, &[]).await,
        Err(StateError::Invalid(_))
    ));
    assert!(matches!(
        j.append(1, &[vec![0; MAX_PAYLOAD + 1]]).await,
        Err(StateError::Invalid(_))
    ));
    assert!(matches!(
        j.read(1, READ_MAX + 1).await,
        Err(StateError::Invalid(_))
    ));
    assert_eq!(j.head().await.unwrap(), None);
    assert!(segments::list(tmp.path()).unwrap().is_empty());
}

#[tokio::test]
async fn a_second_writer_is_refused_while_readers_follow_the_live_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", 400).unwrap();
    let e = Journal::open(tmp.path(), "audit", 400).unwrap_err();
    assert!(matches!(e, JournalError::Locked(_)), "{e}");
    assert!(e.to_string().contains("in use by another process"), "{e}");

    let r = Journal::open_read_only(tmp.path(), "audit").unwrap();
    assert_eq!(r.head().await.unwrap(), None);
    j.append(1, &entries(1..6)).await.unwrap();
    assert_eq!(r.head().await.unwrap().map(|h| h.seq), Some(5));
    j.append(6, &entries(6..20)).await.unwrap();
    assert_eq!(r.head().await.unwrap().map(|h| h.seq), Some(19));
    assert_eq!(r.read(1, 100).await.unwrap(), all(&j).await);
    assert!(matches!(
        r.append(20, &entries(20..21)).await,
        Err(StateError::Invalid(_))
    ));
    drop(j);
    // The lock goes with the writer.
    Journal::open(tmp.path(), "audit", 400).unwrap();
}

fn last_segment(dir: &Path) -> PathBuf {
    segments::list(dir).unwrap().pop().unwrap().path
}

/// Where the records of segment `seg` end, and what follows them.
fn scan_file(seg: &Path) -> (u64, record::Tail) {
    let buf = std::fs::read(seg).unwrap();
    let s = record::scan(
        &buf[HEADER_LEN..],
        SegmentHeader::decode(&buf).unwrap().first_seq,
    );
    ((HEADER_LEN + s.end) as u64, s.tail)
}

fn records_end(seg: &Path) -> u64 {
    scan_file(seg).0
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[tokio::test]
async fn zero_fill_is_written_ahead_and_batches_overwrite_it_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.append(1, &entries(1..6)).await.unwrap();
    let seg = last_segment(tmp.path());
    let end = records_end(&seg);
    assert_eq!(
        size(&seg),
        end + DEFAULT_ZERO_FILL,
        "a fill follows the first batch"
    );
    assert_eq!(
        scan_file(&seg).1,
        record::Tail::ZeroFill {
            bytes: DEFAULT_ZERO_FILL as usize
        }
    );
    assert_eq!(j.stats().fills, 1);
    // Later batches go into the fill: the file does not grow, and no new fill is needed.
    j.append(6, &entries(6..20)).await.unwrap();
    assert_eq!(size(&seg), end + DEFAULT_ZERO_FILL);
    assert!(records_end(&seg) > end);
    assert_eq!(j.stats().fills, 1);
    // A reader beside the writer stops where the fill starts.
    let r = Journal::open_read_only(tmp.path(), "audit").unwrap();
    assert_eq!(r.head().await.unwrap().map(|h| h.seq), Some(19));
    assert_eq!(r.read(1, 100).await.unwrap(), all(&j).await);
    let before = all(&j).await;
    assert_eq!(before.len(), 19);
    drop(j);

    // Reopening keeps the fill and writes the next batch over it.
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(all(&j).await, before);
    assert_eq!(j.head().await.unwrap().map(|h| h.seq), Some(19));
    assert_eq!(
        j.append(20, &entries(20..22)).await.unwrap(),
        AppendOutcome::Appended { first: 20 }
    );
    assert_eq!(size(&seg), end + DEFAULT_ZERO_FILL);
    assert_eq!(all(&j).await.len(), 21);
    assert_eq!(j.stats().fills, 0, "the fill left is enough");
}

#[tokio::test]
async fn the_fill_is_topped_up_once_a_quarter_is_left_and_never_overwrites_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    let want = 2048;
    j.set_zero_fill(want);
    let seg = tmp.path().join(segments::file_name(1));
    let mut next = 1;
    let mut fills = 0;
    for n in [1, 7, 30, 2, 50, 1, 1, 64, 3] {
        j.append(next, &entries(next..next + n)).await.unwrap();
        next += n;
        let (end, tail) = scan_file(&seg);
        let filled = size(&seg) - end;
        // At least a quarter of the fill is left after every batch, and it is all zeros.
        assert!(filled >= want / 4, "{filled} after batch ending {next}");
        assert!(filled <= want);
        assert_eq!(
            tail,
            record::Tail::ZeroFill {
                bytes: filled as usize
            }
        );
        assert!(j.stats().fills >= fills);
        fills = j.stats().fills;
    }
    assert!(fills > 3, "{fills}");
    let got = all(&j).await;
    assert_eq!(got.len() as u64, next - 1);
    for e in &got {
        assert_eq!(e.bytes, entries(e.seq..e.seq + 1)[0]);
    }
}

#[tokio::test]
async fn sealed_segments_end_at_their_last_record_and_no_fill_means_none() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", 400).unwrap();
    for start in (1..40).step_by(3) {
        j.append(start, &entries(start..start + 3)).await.unwrap();
    }
    let segs = segments::list(tmp.path()).unwrap();
    assert!(segs.len() > 3, "{segs:?}");
    let (last, sealed) = segs.split_last().unwrap();
    for s in sealed {
        assert_eq!(scan_file(&s.path).1, record::Tail::Clean, "{:?}", s.path);
    }
    // The open one is filled up to the segment size, no further.
    assert_eq!(size(&last.path), 400);
    assert!(matches!(
        scan_file(&last.path).1,
        record::Tail::ZeroFill { .. }
    ));
    let stats = j.stats();
    assert_eq!(
        stats.fills,
        2 * sealed.len() as u64 + 1,
        "a fill and a cut per segment"
    );

    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.set_zero_fill(0);
    j.append(1, &entries(1..6)).await.unwrap();
    let seg = last_segment(tmp.path());
    assert_eq!(scan_file(&seg).1, record::Tail::Clean);
    assert_eq!(j.stats().fills, 0);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_new_appends_chain_on() {
    for torn in [
        // Half a record.
        {
            let mut r = Vec::new();
            record::encode_record(6, b"{\"seq\":6}", &mut r);
            r.truncate(r.len() / 2);
            r
        },
        // Garbage.
        b"\x00\x00\x00\x09garbage!".to_vec(),
        // A whole record with a bad checksum.
        {
            let mut r = Vec::new();
            record::encode_record(6, b"{\"seq\":6}", &mut r);
            let n = r.len();
            r[n - 1] ^= 1;
            r
        },
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
        j.append(1, &entries(1..6)).await.unwrap();
        let before = all(&j).await;
        drop(j);
        let seg = last_segment(tmp.path());
        let len = records_end(&seg);
        // Where a torn write lands: over the zero fill, right after the last record.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&torn, len).unwrap();
        drop(f);

        let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            len,
            "torn bytes gone (and the fill after them)"
        );
        assert_eq!(all(&j).await, before);
        assert_eq!(
            j.append(6, &entries(6..8)).await.unwrap(),
            AppendOutcome::Appended { first: 6 }
        );
        drop(j);
        let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
        assert_eq!(all(&j).await.len(), 7);
    }
}

#[tokio::test]
async fn a_damaged_record_before_valid_ones_refuses_to_open_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.append(1, &entries(1..6)).await.unwrap();
    drop(j);
    let seg = last_segment(tmp.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // Inside record 2's payload.
    let at = HEADER_LEN + (record::RECORD_OVERHEAD + 9) + 14;
    bytes[at] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();

    let e = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, JournalError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains("record 2") && msg.contains("audit verify"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
}

#[tokio::test]
async fn a_segment_whose_creation_never_finished_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.append(1, &entries(1..4)).await.unwrap();
    drop(j);
    let half = tmp.path().join(segments::file_name(4));
    std::fs::write(
        &half,
        &record::SegmentHeader { first_seq: 4 }.encode()[..10],
    )
    .unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    assert!(!half.exists());
    assert_eq!(j.head().await.unwrap().map(|h| h.seq), Some(3));
    j.append(4, &entries(4..5)).await.unwrap();
    assert_eq!(all(&j).await.len(), 4);
}

#[tokio::test]
async fn an_empty_last_segment_takes_its_head_from_the_one_before() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.append(1, &entries(1..4)).await.unwrap();
    drop(j);
    // As if the writer had stopped right after creating the next segment, with the fill
    // of this one still there (the writer cuts it first; recovery finishes that).
    let first = last_segment(tmp.path());
    assert!(matches!(scan_file(&first).1, record::Tail::ZeroFill { .. }));
    segments::create(tmp.path(), 4).unwrap();
    let j = Journal::open(tmp.path(), "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(scan_file(&first).1, record::Tail::Clean);
    assert_eq!(j.head().await.unwrap().map(|h| h.seq), Some(3));
    j.append(4, &entries(4..6)).await.unwrap();
    assert_eq!(all(&j).await.len(), 5);
    let r = Journal::open_read_only(tmp.path(), "audit").unwrap();
    assert_eq!(r.head().await.unwrap().map(|h| h.seq), Some(5));
}

#[tokio::test]
async fn an_archived_prefix_is_not_corruption_and_the_base_is_the_head_of_an_empty_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let j = Journal::open(dir, "audit", 300).unwrap();
    for start in (1..13).step_by(3) {
        j.append(start, &entries(start..start + 3)).await.unwrap();
    }
    let segs = j.sealed_segments_and_open();
    assert!(segs.len() >= 3, "{segs:?}");
    let second = segs[1].first_seq;
    // Not covered by a base: refused, nothing moves.
    assert!(j.detach(1, &mut |_| Ok(())).is_err());
    let base = j.read(second - 1, 1).await.unwrap().remove(0);
    j.set_base(base.clone()).unwrap();
    // Only forward.
    assert!(
        j.set_base(LogEntry {
            seq: 1,
            bytes: b"{}".to_vec()
        })
        .is_err()
    );
    // Only the oldest sealed segment, and never the open one.
    assert!(j.detach(second, &mut |_| Ok(())).is_err());
    let archived = tmp.path().join("moved.seg");
    j.detach(1, &mut |p| std::fs::rename(p, &archived))
        .unwrap()
        .unwrap();
    assert!(archived.exists());
    // Reads from before the live start begin at it; the head and appends go on.
    assert_eq!(j.read(1, 2).await.unwrap()[0].seq, second);
    assert_eq!(j.first_seq().await.unwrap(), second);
    j.append(13, &entries(13..14)).await.unwrap();
    drop(j);
    // Reopened (recovery) and read-only, the same.
    let j = Journal::open(dir, "audit", 300).unwrap();
    assert_eq!(j.head().await.unwrap().map(|h| h.seq), Some(13));
    assert_eq!(j.base(), Some(base.clone()));
    drop(j);
    let r = Journal::open_read_only(dir, "audit").unwrap();
    assert_eq!(r.first_seq().await.unwrap(), second);
    assert_eq!(r.read(1, 100).await.unwrap().len() as u64, 14 - second);

    // Every live segment but an empty open one archived: the base is the head, and the
    // writer chains on it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let j = Journal::open(dir, "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.append(1, &entries(1..4)).await.unwrap();
    let last = j.read(3, 1).await.unwrap().remove(0);
    drop(j);
    segments::create(dir, 4).unwrap();
    let j = Journal::open(dir, "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    j.set_base(last.clone()).unwrap();
    j.detach(1, &mut |p| std::fs::remove_file(p))
        .unwrap()
        .unwrap();
    drop(j);
    let j = Journal::open(dir, "audit", DEFAULT_SEGMENT_BYTES).unwrap();
    assert_eq!(j.head().await.unwrap(), Some(last.clone()));
    assert!(j.read(1, 10).await.unwrap().is_empty());
    let r = Journal::open_read_only(dir, "audit").unwrap();
    assert_eq!(r.head().await.unwrap(), Some(last));
    j.append(4, &entries(4..5)).await.unwrap();
    assert_eq!(j.read(1, 10).await.unwrap()[0].seq, 4);
    drop((j, r));

    // A prefix missing with no base (segments deleted by hand) is corruption.
    std::fs::remove_file(dir.join(base::FILE_NAME)).unwrap();
    let e = Journal::open(dir, "audit", DEFAULT_SEGMENT_BYTES).unwrap_err();
    assert!(
        matches!(e, JournalError::Corrupt { .. }) && e.to_string().contains("archive base"),
        "{e}"
    );
}
