#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash safety of the upload path, end to end: the real gateway is killed with SIGKILL at
//! random moments while a client PATCHes a 64 MB file, many times over, and restarted on
//! the same data directory every time. The client resumes after every restart the way a
//! tus client does: HEAD for the offset, then PATCH from there (chunk sizes varying from a
//! few bytes to 3 MiB, about half with `Upload-Checksum` in one of the four algorithms,
//! streamed or with a `Content-Length`).
//!
//! Kill moments, drawn at random for each gateway life: part-way through a PATCH body
//! (at a random byte), just after a body was fully sent (0–25 ms later, while the server
//! verifies, fsyncs and commits), and at a random time regardless of what is in flight;
//! the PATCHes that complete the upload are also killed just after their body, so the
//! object's `finish` is interrupted too.
//!
//! Asserted throughout: every offset the server acknowledged (204 `Upload-Offset`) is
//! exactly the PATCH's end; after every restart HEAD's offset is at least the last
//! acknowledged one (no acknowledged byte lost) and at most the end of the one PATCH
//! whose answer the kill swallowed (no byte appears that was never sent; with a checksum,
//! that PATCH is kept whole or not at all); the ledger then covers exactly the bytes up to
//! that offset with each chunk's SHA-256 equal to the source slice's. At the end: HEAD's
//! `Repr-Digest` and the ledger's whole-file SHA-256 are the source's, every ledger chunk
//! is one the client sent with the checksum it declared, and the object read back through
//! the library after the gateway stopped equals the source byte for byte.
//!
//! Replay a failure with the printed seed: `TUS_CRASH_SEED=<seed>`.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Digest;

use sallyport::tus::record::UploadId;
use support::tus_e2e::*;
use support::{Gateway, UPLOADER_TOKEN, wait_timeout};

/// 64 MiB and an odd tail, so the last segment is partial.
const FILE_LEN: usize = 64 * 1024 * 1024 + 12_345;
/// Kills during ordinary PATCHes (the completing PATCHes add a few more).
const KILLS: usize = 24;
/// Kills of a PATCH that completes the upload.
const COMPLETION_KILLS: usize = 2;
/// The shortest lease the config accepts: a killed holder blocks the upload this long.
const EXTRA: &str = "[uploads]\nlease_ttl = \"3s\"\n";

/// When this gateway life ends.
#[derive(Debug, Clone, Copy)]
enum KillPlan {
    /// After `at` bytes of the life's `patch`-th PATCH body were handed to the connection.
    MidBody { patch: usize, at: f64 },
    /// `delay` after the life's `patch`-th PATCH body was completely sent.
    AfterBody { patch: usize, delay: Duration },
    /// `delay` after the life's first PATCH started, whatever is happening then.
    Timer { delay: Duration },
    /// Not killed (the last lives, once enough kills happened).
    None,
}

/// Kills one gateway process at most once, unless disarmed first.
#[derive(Clone)]
struct Killer {
    pid: u32,
    state: Arc<Mutex<Arming>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arming {
    Armed,
    Fired,
    Disarmed,
}

impl Killer {
    fn new(pid: u32) -> Self {
        Self {
            pid,
            state: Arc::new(Mutex::new(Arming::Armed)),
        }
    }

    fn kill(&self) {
        let mut state = self.state.lock().unwrap();
        if *state != Arming::Armed {
            return;
        }
        *state = Arming::Fired;
        support::gateway::send_signal(self.pid, "KILL");
    }

    fn kill_after(&self, delay: Duration) {
        let k = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            k.kill();
        });
    }

    fn fired(&self) -> bool {
        *self.state.lock().unwrap() == Arming::Fired
    }

    /// No kill from now on; returns whether one already happened.
    fn disarm(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        if *state == Arming::Armed {
            *state = Arming::Disarmed;
        }
        *state == Arming::Fired
    }
}

/// What the body stream does to the gateway.
#[derive(Clone, Copy)]
enum Trigger {
    None,
    At(usize),
    AfterEnd(Duration),
}

/// The chunk as a body of 64 KiB pieces that pulls the trigger on its way.
fn body(chunk: Bytes, trigger: Trigger, killer: Killer) -> reqwest::Body {
    const PIECE: usize = 64 * 1024;
    let stream = futures_util::stream::unfold(0usize, move |sent| {
        let chunk = chunk.clone();
        let killer = killer.clone();
        async move {
            if let Trigger::At(at) = trigger
                && sent >= at
            {
                killer.kill();
            }
            if sent >= chunk.len() {
                if let Trigger::AfterEnd(delay) = trigger {
                    killer.kill_after(delay);
                }
                return None;
            }
            let end = (sent + PIECE).min(chunk.len());
            Some((Ok::<_, std::io::Error>(chunk.slice(sent..end)), end))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

const ALGORITHMS: [&str; 4] = ["sha1", "sha256", "sha512", "md5"];

fn checksum(algorithm: &str, data: &[u8]) -> String {
    let digest = match algorithm {
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        "md5" => md5::Md5::digest(data).to_vec(),
        _ => unreachable!(),
    };
    format!(
        "{algorithm} {}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The client's knowledge, carried across gateway lives.
struct Progress {
    /// The highest offset the server acknowledged (204, or HEAD after a restart).
    acked: u64,
    /// PATCHes whose answer a kill swallowed since the last acknowledgment: (start,
    /// length, had a checksum). At most one of them can have been committed (each later
    /// one started at the same offset, so it would have been refused with 409).
    in_flight: Vec<(u64, u64, bool)>,
    /// Every chunk sent.
    sent: Vec<SentChunk>,
    kills: usize,
    completion_kills: usize,
    /// PATCHes the server committed although the client never got the 204.
    committed_unacknowledged: usize,
    patches: usize,
    /// PATCHes refused with 423 (a dead gateway's lease) or 409.
    refused: usize,
}

impl Progress {
    /// Checks HEAD's offset after a restart against what was acknowledged and sent.
    fn check_resume_offset(&mut self, offset: u64) {
        assert!(
            offset >= self.acked,
            "acknowledged bytes were lost: HEAD says {offset}, the server acknowledged {}",
            self.acked
        );
        if offset == self.acked {
            return;
        }
        let fits = self.in_flight.iter().any(|&(start, len, checksum)| {
            start == self.acked
                && offset <= start + len
                // A PATCH with a checksum is kept whole or not at all.
                && (!checksum || offset == start + len)
        });
        assert!(
            fits,
            "HEAD says {offset}, acknowledged {}, and no PATCH in flight ends there \
             (in flight: {:?})",
            self.acked, self.in_flight
        );
        self.committed_unacknowledged += 1;
        self.acknowledge(offset);
    }

    fn acknowledge(&mut self, offset: u64) {
        self.acked = offset;
        self.in_flight.clear();
    }

    fn verified(&self, offset: u64, length: u64) -> Result<Vec<Option<&'static str>>, String> {
        let algs: Vec<_> = self
            .sent
            .iter()
            .filter(|c| c.offset == offset && c.length == length)
            .map(|c| c.algorithm)
            .collect();
        if algs.is_empty() {
            Err("no chunk like this was sent".into())
        } else {
            Ok(algs)
        }
    }
}

fn plan_life(rng: &mut StdRng, p: &Progress) -> KillPlan {
    if p.kills >= KILLS {
        return KillPlan::None;
    }
    let patch = rng.random_range(0..=2);
    match rng.random_range(0..10) {
        0..4 => KillPlan::MidBody {
            patch,
            at: rng.random(),
        },
        4..8 => KillPlan::AfterBody {
            patch,
            delay: Duration::from_micros(rng.random_range(0..25_000)),
        },
        _ => KillPlan::Timer {
            delay: Duration::from_millis(rng.random_range(0..120)),
        },
    }
}

/// Bytes held back per kill still to come, so the upload cannot finish first.
const RESERVE_PER_KILL: u64 = 64 * 1024;

fn chunk_len(rng: &mut StdRng, remaining: u64, kills_to_go: usize) -> u64 {
    let len = match rng.random_range(0..10) {
        // Small and odd: crosses segment boundaries at arbitrary points.
        0 => rng.random_range(1..70_000),
        _ => rng.random_range(64 * 1024..=3 * 1024 * 1024),
    };
    if kills_to_go == 0 {
        return len.min(remaining);
    }
    // Until every planned kill happened: never more than a quarter of what is left above
    // a reserve of 64 KiB per kill to come, and one byte at a time within it. A fast
    // machine once finished the file before the last kills (a quarter of what is left
    // shrinks to nothing within one long timer life); now a life would need 64 Ki PATCHes
    // to eat one kill's reserve.
    let room = remaining.saturating_sub(kills_to_go as u64 * RESERVE_PER_KILL);
    len.min((room / 4).max(1)).min(remaining)
}

/// HEAD's `Upload-Offset`, or the request's error (the gateway is gone).
async fn head_offset(client: &TusClient, id: UploadId) -> reqwest::Result<u64> {
    let r = client.head(id).await?;
    assert_eq!(r.status(), 200, "HEAD");
    Ok(header(&r, "upload-offset").unwrap().parse().unwrap())
}

enum LifeEnd {
    Killed,
    Complete,
}

/// One gateway life: resume from HEAD, PATCH until the kill or the end.
async fn life(
    gw: &Gateway,
    id: UploadId,
    source: &Bytes,
    p: &mut Progress,
    plan: KillPlan,
    rng: &mut StdRng,
    killer: &Killer,
) -> LifeEnd {
    let client = TusClient {
        http: gw.client(),
        origin: gw.url(""),
        token: UPLOADER_TOKEN.to_owned(),
    };
    let len = source.len() as u64;
    let mut offset = head_offset(&client, id)
        .await
        .unwrap_or_else(|e| panic!("HEAD on a fresh gateway: {e}\n{:?}", gw.drain_stderr()));
    p.check_resume_offset(offset);
    // The ledger holds exactly the acknowledged chunks, each with the right digest.
    let doc = client.ledger(id).await;
    check_ledger_chunks(&doc, source, offset, |o, l| p.verified(o, l));
    if offset == len {
        return LifeEnd::Complete;
    }
    if let KillPlan::Timer { delay } = plan {
        killer.kill_after(delay);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0usize;
    loop {
        assert!(Instant::now() < deadline, "a gateway life made no progress");
        let length = chunk_len(rng, len - offset, KILLS.saturating_sub(p.kills));
        let completes = offset + length == len;
        let algorithm = rng
            .random_bool(0.5)
            .then(|| ALGORITHMS[rng.random_range(0..ALGORITHMS.len())]);
        let chunk = source.slice(offset as usize..(offset + length) as usize);
        let mut trigger = match plan {
            KillPlan::MidBody { patch, at } if patch == n => {
                Trigger::At((length as f64 * at) as usize)
            }
            KillPlan::AfterBody { patch, delay } if patch == n => Trigger::AfterEnd(delay),
            _ => Trigger::None,
        };
        if completes && p.completion_kills < COMPLETION_KILLS && !killer.fired() {
            trigger = Trigger::AfterEnd(Duration::from_micros(rng.random_range(0..10_000)));
        }
        let streamed = !matches!(trigger, Trigger::None) || rng.random_bool(0.5);
        let mut req = client
            .http
            .patch(client.url(&format!("/files/{id}")))
            .timeout(Duration::from_secs(60))
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .bearer_auth(&client.token);
        if let Some(a) = algorithm {
            req = req.header("Upload-Checksum", checksum(a, &chunk));
        }
        req = if streamed {
            req.body(body(chunk, trigger, killer.clone()))
        } else {
            req.body(chunk)
        };
        p.sent.push(SentChunk {
            offset,
            length,
            algorithm,
        });
        p.patches += 1;
        let result = req.send().await;
        match result {
            Ok(r) if r.status() == 204 => {
                let new: u64 = header(&r, "upload-offset").unwrap().parse().unwrap();
                assert_eq!(
                    new,
                    offset + length,
                    "204's Upload-Offset is the chunk's end"
                );
                offset = new;
                p.acknowledge(new);
                if new == len {
                    return LifeEnd::Complete;
                }
            }
            Ok(r) if r.status() == 423 || r.status() == 409 => {
                // 423: the killed gateway's lease has not expired yet. 409: a commit the
                // kill interrupted was finished under the lease since our HEAD. Neither
                // kept anything of this PATCH.
                let wait = header(&r, "retry-after").map_or(0, |s| s.parse::<u64>().unwrap());
                assert!(wait <= 3, "Retry-After {wait} beyond the lease TTL");
                p.refused += 1;
                tokio::time::sleep(Duration::from_millis(wait * 1000 + 50)).await;
                let now = match head_offset(&client, id).await {
                    Ok(now) => now,
                    // The refused PATCH's body may still have been streaming and pulled
                    // its trigger.
                    Err(e) => {
                        assert!(killer.fired(), "HEAD failed without a kill: {e}");
                        return LifeEnd::Killed;
                    }
                };
                p.check_resume_offset(now);
                offset = now;
                if now == len {
                    return LifeEnd::Complete;
                }
                continue;
            }
            Ok(r) => {
                let status = r.status();
                panic!("PATCH: unexpected {status}: {}", r.text().await.unwrap());
            }
            Err(e) => {
                assert!(
                    killer.fired(),
                    "PATCH failed although the gateway was not killed: {e}"
                );
                p.in_flight.push((offset, length, algorithm.is_some()));
                if completes {
                    p.completion_kills += 1;
                }
                return LifeEnd::Killed;
            }
        }
        n += 1;
        if killer.fired() {
            // Killed between requests (a timer, or right after a 204): the next request
            // fails, and nothing is in flight.
            return LifeEnd::Killed;
        }
    }
}

#[test]
fn sigkill_during_patches_never_loses_an_acknowledged_byte() {
    let seed = seed_from_env("TUS_CRASH_SEED");
    eprintln!("seed {seed} (replay with TUS_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let source = Bytes::from(random_bytes(FILE_LEN, seed));
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();

    let gw = Gateway::start_in(dir.path(), EXTRA);
    let id = rt.block_on(async {
        let client = TusClient {
            http: gw.client(),
            origin: gw.url(""),
            token: UPLOADER_TOKEN.to_owned(),
        };
        client.create(FILE_LEN as u64).await
    });
    let mut gw = Some(gw);
    let mut p = Progress {
        acked: 0,
        in_flight: Vec::new(),
        sent: Vec::new(),
        refused: 0,
        kills: 0,
        completion_kills: 0,
        committed_unacknowledged: 0,
        patches: 0,
    };
    let mut lives = 0;
    loop {
        lives += 1;
        assert!(lives < 200, "the upload did not finish");
        let mut g = gw
            .take()
            .unwrap_or_else(|| Gateway::start_in(dir.path(), EXTRA));
        let killer = Killer::new(g.child.id());
        let plan = plan_life(&mut rng, &p);
        let end = rt.block_on(life(&g, id, &source, &mut p, plan, &mut rng, &killer));
        let exited = g.child.try_wait().unwrap();
        eprintln!(
            "life {lives}: {plan:?}, acknowledged {} after {} PATCHes; gateway {}",
            p.acked,
            p.patches,
            match exited {
                Some(s) => format!("exited ({s})"),
                None => "running".into(),
            }
        );
        if let (Some(s), false) = (exited, killer.fired()) {
            panic!("the gateway exited by itself ({s}): {:?}", g.drain_stderr());
        }
        match end {
            LifeEnd::Killed => {
                let status = wait_timeout(&mut g.child, Duration::from_secs(10))
                    .expect("the killed gateway exits");
                assert_eq!(status.signal(), Some(9), "the gateway died of SIGKILL");
                p.kills += 1;
            }
            LifeEnd::Complete => {
                // A timer may have fired just as the last PATCH was answered.
                if killer.disarm() {
                    let _ = wait_timeout(&mut g.child, Duration::from_secs(10));
                    p.kills += 1;
                    continue;
                }
                gw = Some(g);
                break;
            }
        }
    }
    let mut g = gw.unwrap();
    eprintln!(
        "{} kills ({} during completing PATCHes) over {lives} gateway lives, {} PATCHes, \
         {} committed without their 204 reaching the client, {} refused (423/409), in {:.1} s",
        p.kills,
        p.completion_kills,
        p.patches,
        p.committed_unacknowledged,
        p.refused,
        started.elapsed().as_secs_f64()
    );
    assert!(
        p.kills >= KILLS,
        "only {} kills before the upload finished",
        p.kills
    );

    // One more clean restart, then the whole upload against the source.
    g.stop();
    drop(g);
    let g = Gateway::start_in(dir.path(), EXTRA);
    let client = TusClient {
        http: g.client(),
        origin: g.url(""),
        token: UPLOADER_TOKEN.to_owned(),
    };
    let chunks = rt.block_on(check_finished_upload(&client, id, &source, |o, l| {
        p.verified(o, l)
    }));
    eprintln!("ledger: {chunks} chunks");
    let mut g = g;
    g.stop();
    let stored = rt.block_on(read_back(&data_dir(dir.path()), id));
    assert_same_bytes(&stored, &source);
}

fn data_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("data")
}
