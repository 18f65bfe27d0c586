//! Where "now" comes from: the system clock in production, a clock tests move by hand.
//!
//! Everything that issues or validates tokens reads time through a [`Clock`], so expiry is
//! tested by moving time forward instead of sleeping. Shared by the server and the verifier.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// Where "now" comes from. Code that issues or validates tokens reads time only through it,
/// so tests move time forward without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Unix seconds.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// Unix seconds now.
    pub fn now_secs(self) -> u64 {
        Clock::now(&self)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that starts at the system time and moves only when told to (tests).
#[derive(Debug)]
pub struct MockClock(AtomicU64);

impl MockClock {
    /// A clock at the current system time.
    pub fn new() -> Self {
        Self(AtomicU64::new(SystemClock.now()))
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MockClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
