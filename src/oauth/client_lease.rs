//! Leases on client records: a client that authenticated through the store a moment ago
//! authenticates again on this instance without a store round trip, and no instance ever
//! accepts a secret after the rotation (or deletion, or update) that replaced it has answered.
//!
//! The rules, each needed for that promise:
//! - A lease is granted only by an authentication that read the record and the client's
//!   rate-limit deadline from the store and succeeded. It lasts `HALLPASS_CLIENT_LEASE_MS`
//!   (default 250 ms) from the instant *before* that read was sent, on this instance's
//!   monotonic clock, so a lease never outlives the moment its record was current by more
//!   than its length.
//! - No lease is longer than the *ceiling*, the same on every instance of this release
//!   ([`crate::config::CLIENT_LEASE_CEILING`], 250 ms; `HALLPASS_CLIENT_LEASE_MS` may only
//!   shorten it). Every change to a client record ([`crate::oauth::client_update`]: rotation,
//!   RFC 7592 or management update, deletion) ends this instance's lease at once and then
//!   waits the ceiling (plus [`MARGIN`]) after the store confirmed the write, before it
//!   answers, whatever this instance's own lease length, even with leases off here. Every
//!   lease another instance took from the old record was taken before the write, so it has
//!   expired by then. This does not rely on any message reaching the other instances in time
//!   (Redis client tracking would: its invalidation can arrive after the rotation answered),
//!   nor on the instances agreeing on a setting. A write whose outcome is unknown (a store
//!   error) waits too, and so does a change refused because the client is not there (a retry
//!   of a delete whose caller hung up must not answer before the first one's wait is over).
//! - A presented secret that does not match the leased record ends the lease on this
//!   instance, before the request is authenticated again through the store (deadline checked,
//!   failure counted). So a guess is never judged against a lease alone, and the guesses after
//!   it meet the rate limit as they would without leases.
//!
//! What a lease changes, and what it does not:
//! - A lockout that starts on another instance while this one holds a lease does not stop the
//!   *right* secret here until the lease ends (at most one lease length) or the next wrong
//!   secret arrives here, whichever is first. Wrong secrets are refused exactly as before.
//! - Client authentication on the other endpoints (revocation, introspection) uses leases
//!   the same way.
//! - Only stored records are leased: not the built-in docs client, not metadata-document
//!   clients (which have their own cache, [`crate::oauth::cimd`]), and never an unknown id,
//!   so a new registration is usable everywhere at once and a flood of made-up ids fills
//!   nothing. At most [`MAX_LEASES`] are held; past it the expired ones are dropped, and if
//!   none is, no new lease is granted until one expires (so registering many clients cannot
//!   evict the leases of busy ones).
//! - Monotonic time stops while a machine is suspended: an instance whose VM was frozen
//!   mid-lease and thawed after a change answered could still use its lease for what was left
//!   of it. Instances that are paused and resumed (live migration with a long pause,
//!   `SIGSTOP`) should run with `HALLPASS_CLIENT_LEASE_MS=0`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::oauth::client::Client;

/// How many leases one instance holds at most (a client record is about 1 KiB).
pub const MAX_LEASES: usize = 4096;

/// Added to the lease length before a change answers: the monotonic clocks of two
/// instances may run at slightly different rates (NTP slews them by at most 0.05%).
pub const MARGIN: Duration = Duration::from_millis(10);

/// The leases this instance holds, by `client_id`.
pub struct ClientLeases {
    length: Duration,
    ceiling: Duration,
    entries: Mutex<HashMap<String, Lease>>,
}

struct Lease {
    client: Arc<Client>,
    expires: Instant,
}

impl ClientLeases {
    /// Leases of `length`, at most `ceiling` (the longest lease any instance may hold, and
    /// what every change waits); a zero length turns them off here (every authentication
    /// reads the store), a zero ceiling everywhere (changes do not wait).
    pub fn new(length: Duration, ceiling: Duration) -> Self {
        Self {
            length: length.min(ceiling),
            ceiling,
            entries: Mutex::default(),
        }
    }

    /// The lease length.
    pub fn length(&self) -> Duration {
        self.length
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The leased record of `client_id` when its lease is live and `accepts` holds for it.
    /// When `accepts` does not hold, the lease ends here: the caller authenticates through
    /// the store.
    pub fn authenticate(
        &self,
        client_id: &str,
        accepts: impl FnOnce(&Client) -> bool,
    ) -> Option<Arc<Client>> {
        if self.length.is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        let lease = entries.get(client_id)?;
        if lease.expires <= now {
            entries.remove(client_id);
            return None;
        }
        if accepts(&lease.client) {
            Some(lease.client.clone())
        } else {
            entries.remove(client_id);
            None
        }
    }

    /// Grants a lease on `client`, authenticated through a store read sent after `read_at`.
    pub fn grant(&self, client: Arc<Client>, read_at: Instant) {
        if self.length.is_zero() {
            return;
        }
        let expires = read_at + self.length;
        let now = Instant::now();
        if expires <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_LEASES && !entries.contains_key(&client.client_id) {
            entries.retain(|_, l| l.expires > now);
            if entries.len() >= MAX_LEASES {
                return;
            }
        }
        let id = client.client_id.clone();
        // A lease from an earlier read never replaces one from a later read.
        match entries.get(&id) {
            Some(held) if held.expires >= expires => {}
            _ => {
                entries.insert(id, Lease { client, expires });
            }
        }
    }

    /// Ends this instance's lease on `client_id` (a wrong secret, or a change made here).
    pub fn end(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    /// After a change to `client_id`'s record was written (or may have been): ends this
    /// instance's lease, then waits until no instance can still hold one taken before the
    /// write. Call it before the change answers.
    pub async fn changed(&self, client_id: &str) {
        self.end(client_id);
        self.outlived().await;
        // A lease granted meanwhile on this instance came from a read that may predate the
        // write; it has expired by now, and this drops it.
        self.end(client_id);
    }

    /// Waits until every lease taken before now, on any instance, has ended: the ceiling
    /// plus [`MARGIN`].
    pub async fn outlived(&self) {
        if !self.ceiling.is_zero() {
            tokio::time::sleep(self.ceiling + MARGIN).await;
        }
    }

    /// How many leases are held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, secret_hash: &str) -> Arc<Client> {
        let json = crate::oauth::client::tests::record(id, secret_hash);
        Arc::new(serde_json::from_slice(&json).expect("a client record"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_serves_until_its_length_from_the_read_has_passed() {
        let leases = ClientLeases::new(Duration::from_millis(250), Duration::from_millis(250));
        let read_at = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;
        leases.grant(client("c1", "h1"), read_at);
        assert!(leases.authenticate("c1", |_| true).is_some());
        tokio::time::advance(Duration::from_millis(149)).await;
        assert!(leases.authenticate("c1", |_| true).is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(leases.authenticate("c1", |_| true).is_none());
        assert!(leases.is_empty(), "the expired lease is dropped");
        assert!(leases.authenticate("other", |_| true).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_the_lease_does_not_accept_ends_it() {
        let leases = ClientLeases::new(Duration::from_millis(250), Duration::from_millis(250));
        leases.grant(client("c1", "h1"), Instant::now());
        assert!(
            leases
                .authenticate("c1", |c| c.secret_hash.as_deref() == Some("wrong"))
                .is_none()
        );
        assert!(
            leases.authenticate("c1", |_| true).is_none(),
            "the right secret goes to the store after a wrong one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_waits_out_every_lease_taken_before_it() {
        let leases = ClientLeases::new(Duration::from_millis(250), Duration::from_millis(250));
        leases.grant(client("c1", "h1"), Instant::now());
        let start = Instant::now();
        let waiting = leases.changed("c1");
        // A read that began before the write grants its lease while the change waits.
        leases.grant(client("c1", "h1"), start);
        waiting.await;
        assert_eq!(start.elapsed(), Duration::from_millis(250) + MARGIN);
        assert!(leases.authenticate("c1", |_| true).is_none());
        assert!(leases.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_read_does_not_shorten_or_replace_a_later_lease() {
        let leases = ClientLeases::new(Duration::from_millis(250), Duration::from_millis(250));
        let early = Instant::now();
        tokio::time::advance(Duration::from_millis(50)).await;
        leases.grant(client("c1", "new"), Instant::now());
        leases.grant(client("c1", "old"), early);
        let held = leases.authenticate("c1", |_| true).expect("a live lease");
        assert_eq!(held.secret_hash.as_deref(), Some("new"));
        // A read whose lease would already have expired grants nothing.
        tokio::time::advance(Duration::from_millis(300)).await;
        leases.grant(client("c2", "h"), early);
        assert!(leases.authenticate("c2", |_| true).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn leases_stay_bounded_and_zero_length_turns_them_off() {
        let leases = ClientLeases::new(Duration::from_millis(250), Duration::from_millis(250));
        for i in 0..MAX_LEASES + 10 {
            leases.grant(client(&format!("c{i}"), "h"), Instant::now());
        }
        assert_eq!(leases.len(), MAX_LEASES);
        assert!(
            leases.authenticate("c0", |_| true).is_some(),
            "a full table keeps the leases it holds"
        );
        tokio::time::advance(Duration::from_millis(250)).await;
        leases.grant(client("late", "h"), Instant::now());
        assert_eq!(leases.len(), 1, "expired leases make room");

        let off = ClientLeases::new(Duration::ZERO, Duration::from_millis(250));
        off.grant(client("c1", "h"), Instant::now());
        assert!(off.authenticate("c1", |_| true).is_none());
        assert!(off.is_empty());
        let start = Instant::now();
        off.changed("c1").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(250) + MARGIN,
            "with leases off here, a change still waits for other instances' leases"
        );
        let nowhere = ClientLeases::new(Duration::from_millis(100), Duration::ZERO);
        nowhere.grant(client("c1", "h"), Instant::now());
        assert!(nowhere.is_empty(), "a zero ceiling turns leases off");
        let start = Instant::now();
        nowhere.changed("c1").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn no_lease_is_longer_than_the_ceiling() {
        let leases = ClientLeases::new(Duration::from_secs(5), Duration::from_millis(250));
        assert_eq!(leases.length(), Duration::from_millis(250));
        leases.grant(client("c1", "h"), Instant::now());
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(leases.authenticate("c1", |_| true).is_none());
    }
}
