//! Signing keys: loaded once from the keys directory, never printed.
//!
//! Each key is a PKCS#8 PEM file (`<kid>.pem`, mode 0600) with an optional sidecar
//! `<kid>.json` holding its algorithm and timestamps. `kid` is the RFC 7638 JWK thumbprint of
//! the public key. Keys sign with `ring` directly (the parsed key pair is kept, so signing
//! costs one signature, not a PKCS#8 parse per token); the server checks its own tokens with
//! the same [`crate::jose`] path as the verifier, the algorithm pinned to the key's own
//! (RFC 8725 §3.1).
//!
//! ## Lifecycle: `next → active → retiring → retired`
//!
//! Every instance that shares the directory derives each key's state from the keys' own
//! timestamps and its clock, so they agree without a leader:
//! - **next**: `not_before` is still ahead. Published in the JWKS, signs nothing.
//!   `hallpass keys rotate` creates a key whose `not_before` is one JWKS `max-age` plus a margin
//!   ahead, so every resource server's cached JWKS holds it before it signs anything.
//! - **active**: the key with the latest `not_before` that has passed. It signs.
//! - **retiring**: superseded by a newer active key, but tokens it signed may still be alive:
//!   published until the access-token lifetime (plus leeway) has passed since it was superseded.
//! - **retired**: not published, never used. `hallpass keys retire <kid>` retires a key at once
//!   (a compromised key), and `rotate` deletes the files of retired keys.
//!
//! ## Files
//!
//! - `signing.rs`: [`SigningKey`] (ring key pair, JWK, verification key) and [`KeyMeta`].
//! - `set.rs`: [`KeySet`] and [`KeyState`]: which key signs and which are published, when.
//! - `files.rs`: reading and writing the PEM and metadata files.
//! - `rotation.rs`: [`rotate`], [`retire`], the automatic schedule and the reload loop.

use std::path::PathBuf;

mod files;
pub mod rotation;
mod set;
mod signing;

pub use rotation::{
    KEY_RELOAD_SECS, MAX_TOKEN_LIFETIME, load_at_startup, retire, rotate, rotate_if_due,
    rotation_lead, spawn_reloader,
};
pub use set::{KeySet, KeyState};
pub use signing::{KeyMeta, SigningKey};

/// Why keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a usable key.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// There is no key to sign with.
    #[error(
        "no signing key is active in the keys directory; run `hallpass keys generate` or point HALLPASS_KEYS_DIR at the mounted keys"
    )]
    NoActiveKey,
    /// Signing failed (should not happen with a valid key).
    #[error("signing failed")]
    Sign,
    /// A blocking key task panicked or was cancelled.
    #[error("the key task stopped: {0}")]
    Task(String),
}
