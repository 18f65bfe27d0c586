//! Small cryptographic helpers: randomness, hashing, constant-time comparison, passwords.
//!
//! - All randomness comes from `ring::rand::SystemRandom` (the OS generator).
//! - Opaque high-entropy values (codes, client secrets) are stored as SHA-256 and compared
//!   in constant time; a slow hash would add nothing to 256 random bits.
//! - User passwords are argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane),
//!   hashed and verified on the blocking pool, never on the async runtime. Verifying for an
//!   unknown user runs against a dummy hash so that timing does not reveal who exists.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::SaltString,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
};
use subtle::ConstantTimeEq;

/// `n` random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SystemRandom only fails when the OS has no randomness at all; there is no safe way on.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random generator failed");
    buf
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A random identifier of 128 bits, base64url (22 characters).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// SHA-256 of `data`, base64url without padding.
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, data))
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Base64url without padding.
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding.
pub fn unb64(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data).ok()
}

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
    #[allow(clippy::expect_used)]
    let params = Params::new(19_456, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The hash could not be computed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task did not complete.
    #[error("password task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Every hashing slot stayed busy: the server is overloaded (answer 503).
    #[error("too many password checks at once")]
    Busy,
}

/// How long a password check waits for a hashing slot before the request gets 503.
pub const PASSWORD_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Hashes a password with argon2id on the blocking pool, outside any slot (startup only).
async fn hash_password(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&random_bytes::<16>())
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await?
}

/// Password hashing for the whole process: argon2id costs 19 MiB and tens of milliseconds per
/// call, so at most two per core run at once (a flood of sign-ins must not exhaust memory);
/// a caller that cannot get a slot within [`PASSWORD_SLOT_WAIT`] gets [`PasswordError::Busy`].
/// Also holds the dummy hash that unknown users are verified against.
#[derive(Clone)]
pub struct Passwords {
    dummy: std::sync::Arc<String>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Passwords {
    /// Computes the dummy hash (once, at startup) and sizes the slots to the machine.
    pub async fn new() -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Ok(Self {
            dummy: std::sync::Arc::new(hash_password(random_token()).await?),
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(cores * 2)),
        })
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PasswordError> {
        tokio::time::timeout(PASSWORD_SLOT_WAIT, self.slots.acquire())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _slot = self.slot().await?;
        hash_password(password).await
    }

    /// Verifies `password` against `hash`, or against the dummy hash when `hash` is `None`
    /// (and then answers `false`), on the blocking pool. Takes the same time either way.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let _slot = self.slot().await?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.as_ref().clone());
        tokio::task::spawn_blocking(move || {
            let ok = match PasswordHash::new(&hash) {
                Ok(parsed) => argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => false,
            };
            ok && known
        })
        .await
        .map_err(PasswordError::from)
    }
}

impl From<PasswordError> for crate::error::OAuthError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Busy => crate::error::OAuthError::unavailable(),
            other => crate::error::OAuthError::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_256_bits_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[tokio::test]
    async fn password_verifies_only_with_the_right_password_and_a_known_user() {
        let passwords = Passwords::new().await.unwrap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_set_of_hashing_slots_answers_busy_instead_of_queueing_forever() {
        let passwords = Passwords::new().await.unwrap();
        let held = passwords
            .slots
            .clone()
            .acquire_many_owned(passwords.slots.available_permits() as u32)
            .await
            .unwrap();
        tokio::time::pause();
        let waiting = passwords.verify("pw".into(), None);
        assert!(matches!(waiting.await, Err(PasswordError::Busy)));
        drop(held);
    }
}
