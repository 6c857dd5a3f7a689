//! The per-client limiter of forged and malformed links (429 with `Retry-After`).
//!
//! A token bucket per client: `burst` tokens, refilled at `burst` per `window`. Every link
//! refused as a forgery suspect ([`crate::signed_link::LinkRejection::is_forgery_suspect`]:
//! malformed, unknown key, bad signature) takes a token; a client with no token left gets
//! 429 on every download request — checked before the link is even parsed, so a blocked
//! client costs no HMAC, no state read and no audit write — until a token has refilled.
//! Expired, revoked or exhausted links do not count: they come from honest clients.
//!
//! Clients are keyed by IPv4 address, or by IPv6 /64 (one subscriber usually holds a whole
//! /64, so counting single IPv6 addresses would be trivial to dodge); an IPv4-mapped IPv6
//! peer counts as its IPv4 address. The address is the request's client address
//! (`proxy::ClientAddr::client`): behind a configured balancer or trusted proxy, the client
//! it named, so one client's forgeries do not put every client of that proxy on 429.
//!
//! **Per instance, in memory.** Each gateway instance keeps its own buckets (no state-store
//! write per forged request, which would let forgeries load the shared store); behind a
//! load balancer a client may get up to `burst` forgeries per instance per window. The map
//! holds at most [`MAX_CLIENTS`] clients; when full, buckets that have refilled are dropped
//! first, then arbitrary ones down to [`REFILL_TO`], so the full pass over the map runs at
//! most once per `MAX_CLIENTS - REFILL_TO` new clients (a flood from many addresses once
//! paid that pass, under the lock, on every forged request).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked at once.
pub const MAX_CLIENTS: usize = 65_536;
/// What a full map is cut down to: an eighth is freed at once.
pub const REFILL_TO: usize = MAX_CLIENTS - MAX_CLIENTS / 8;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The limiter.
#[derive(Debug)]
pub struct BadSignatureLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The outcome of recording a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The client still has tokens.
    Counted,
    /// That was the client's last token: from now on it is refused.
    Blocked,
}

impl BadSignatureLimiter {
    /// `burst` failures, refilled completely in `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            per_sec: burst / window.as_secs_f64().max(0.001),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `client` is blocked at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(client);
        let buckets = self.lock();
        // An empty map is the common case: nothing to look up.
        let Some(b) = buckets.get(&key) else {
            return Ok(());
        };
        let tokens = self.refilled(b, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            let secs = (1.0 - tokens) / self.per_sec;
            Err(Duration::from_secs_f64(secs.max(0.0)).max(Duration::from_secs(1)))
        }
    }

    /// Counts one forgery-suspect rejection from `client`.
    pub fn record_failure(&self, client: IpAddr, now: Instant) -> Recorded {
        let key = client_key(client);
        let mut buckets = self.lock();
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&key) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            buckets.retain(|_, b| refill(b, now, burst, per_sec) < burst);
            if buckets.len() > REFILL_TO {
                let excess = buckets.len() - REFILL_TO;
                let victims: Vec<IpAddr> = buckets.keys().take(excess).copied().collect();
                for k in victims {
                    buckets.remove(&k);
                }
            }
        }
        let burst = self.burst;
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let tokens = refill(bucket, now, burst, self.per_sec);
        let left = (tokens - 1.0).max(0.0);
        *bucket = Bucket {
            tokens: left,
            updated: now,
        };
        if left < 1.0 {
            Recorded::Blocked
        } else {
            Recorded::Counted
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        refill(b, now, self.burst, self.per_sec)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        // A poisoned lock only means another thread panicked mid-update of a counter map;
        // the map is still a valid map, so keep using it.
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn refill(b: &Bucket, now: Instant, burst: f64, per_sec: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
    (b.tokens + elapsed * per_sec).min(burst)
}

/// IPv4 as is; IPv4-mapped IPv6 as IPv4; other IPv6 as its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_burst_and_refills() {
        let l = BadSignatureLimiter::new(3, Duration::from_secs(30));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.check(ip, t0).is_ok());
        assert_eq!(l.record_failure(ip, t0), Recorded::Counted);
        assert_eq!(l.record_failure(ip, t0), Recorded::Counted);
        assert_eq!(l.record_failure(ip, t0), Recorded::Blocked);
        let retry = l.check(ip, t0).unwrap_err();
        // One token per 10 s.
        assert!(
            retry >= Duration::from_secs(9) && retry <= Duration::from_secs(10),
            "{retry:?}"
        );
        assert!(l.check(other, t0).is_ok());
        assert!(l.check(ip, t0 + Duration::from_secs(5)).is_err());
        assert!(l.check(ip, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_as_v4() {
        let l = BadSignatureLimiter::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        l.record_failure("2001:db8:1:2::1".parse().unwrap(), t0);
        assert!(
            l.check("2001:db8:1:2:ffff::9".parse().unwrap(), t0)
                .is_err()
        );
        assert!(l.check("2001:db8:1:3::1".parse().unwrap(), t0).is_ok());
        l.record_failure("::ffff:198.51.100.1".parse().unwrap(), t0);
        assert!(l.check("198.51.100.1".parse().unwrap(), t0).is_err());
    }

    #[test]
    fn the_map_is_bounded() {
        let l = BadSignatureLimiter::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            l.record_failure(IpAddr::V4(i.into()), t0);
        }
        assert!(l.lock().len() <= MAX_CLIENTS);
    }

    #[test]
    fn a_full_map_frees_an_eighth_at_once_so_the_scan_is_rare() {
        let l = BadSignatureLimiter::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            l.record_failure(IpAddr::V4(i.into()), t0);
        }
        assert_eq!(l.lock().len(), MAX_CLIENTS);
        // The next new client triggers one pass, which leaves room for many more.
        l.record_failure(IpAddr::V4(u32::MAX.into()), t0);
        assert_eq!(l.lock().len(), REFILL_TO + 1);
        // A blocked client that survived the cut is still blocked.
        let kept = *l.lock().keys().next().unwrap();
        for _ in 0..5 {
            l.record_failure(kept, t0);
        }
        assert!(l.check(kept, t0).is_err());
    }
}
