//! Request rates per client: how many sessions and guest identities one
//! user or one address may create.

use std::collections::HashMap;
use std::time::Duration;

use collab_core::Timestamp;

/// A sustained rate with a burst above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed at once.
    pub burst: u32,
    /// Time for one request's allowance to come back.
    pub every: Duration,
}

impl Rate {
    /// `burst` at once, then one every `every`.
    pub const fn new(burst: u32, every: Duration) -> Self {
        Self { burst, every }
    }
}

/// Token buckets by key (a user id, an address). Buckets that have filled up
/// again are forgotten once the map grows, so memory follows the clients
/// active within one refill, not all clients ever seen.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: HashMap<String, (f64, Timestamp)>,
}

/// Past this many keys, full buckets are swept out.
const SWEEP_AT: usize = 4096;

impl RateLimiter {
    /// Whether every key in `keys` may make one more request now; takes one
    /// from each only when all may, so a refusal costs nothing.
    pub(crate) fn admit(&mut self, rate: Rate, keys: &[String], now: Timestamp) -> bool {
        let burst = f64::from(rate.burst.max(1));
        let per_ms = 1.0 / (rate.every.as_millis().max(1) as f64);
        let level = |bucket: Option<&(f64, Timestamp)>| match bucket {
            Some((tokens, at)) => (tokens + now.since(*at).as_millis() as f64 * per_ms).min(burst),
            None => burst,
        };
        if keys.iter().any(|k| level(self.buckets.get(k)) < 1.0) {
            return false;
        }
        for key in keys {
            let tokens = level(self.buckets.get(key)) - 1.0;
            self.buckets.insert(key.clone(), (tokens, now));
        }
        if self.buckets.len() > SWEEP_AT {
            self.buckets.retain(|_, b| level(Some(b)) < burst);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = Rate::new(3, Duration::from_secs(10));
        let mut limits = RateLimiter::default();
        let t0 = Timestamp::from_millis(1_000_000);
        let keys = ["user:a".to_owned(), "ip:1".to_owned()];
        for _ in 0..3 {
            assert!(limits.admit(rate, &keys, t0));
        }
        assert!(!limits.admit(rate, &keys, t0));
        // Another user from the same address is held by the address's bucket.
        assert!(!limits.admit(rate, &["user:b".to_owned(), "ip:1".to_owned()], t0));
        assert!(limits.admit(rate, &["user:b".to_owned()], t0));
        assert!(limits.admit(rate, &keys, t0.plus(Duration::from_secs(10))));
        assert!(!limits.admit(rate, &keys, t0.plus(Duration::from_secs(11))));
    }
}
