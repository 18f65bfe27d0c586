//! Small cryptographic helpers: randomness, hashing, constant-time comparison, passwords.
//!
//! - All randomness comes from `ring::rand::SystemRandom` (the OS generator).
//! - Opaque high-entropy values (codes, client secrets) are stored as SHA-256 and compared
//!   in constant time; a slow hash would add nothing to 256 random bits.
//! - User passwords are argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane),
//!   hashed and verified on the blocking pool, never on the async runtime, in a fixed set of
//!   slots that each own their 19 MiB (reused, never freed), so a flood of sign-ins cannot
//!   grow memory. Verifying for an unknown user runs against a dummy hash so that timing
//!   does not reveal who exists.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
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

/// argon2id with the OWASP Password Storage Cheat Sheet parameters: m=19456 KiB, t=2, p=1.
fn argon2() -> Argon2<'static> {
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

impl From<argon2::Error> for PasswordError {
    fn from(err: argon2::Error) -> Self {
        PasswordError::Hash(err.to_string())
    }
}

impl From<argon2::password_hash::Error> for PasswordError {
    fn from(err: argon2::password_hash::Error) -> Self {
        PasswordError::Hash(err.to_string())
    }
}

/// How long a password check waits for a hashing slot before the request gets 503.
pub const PASSWORD_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Most hashing slots, whatever the core count: each owns 19 MiB for good.
pub const MAX_PASSWORD_SLOTS: usize = 8;

/// The argon2 working memory of one slot: `Params::block_count()` blocks of 1 KiB.
type Memory = Box<[Block]>;

/// The slots and the memory they own. A slot's memory is allocated the first time the slot
/// is used and then reused for every later hash, so the process never holds more than
/// `slots × 19 MiB` for passwords, however many requests arrive and whichever blocking
/// threads run them (a fresh allocation per hash fragments the allocator's arenas).
struct Pool {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    free: std::sync::Mutex<Vec<Memory>>,
    blocks: usize,
}

/// A slot taken from the pool: the permit and (once allocated) its memory. Dropping it puts
/// the memory back before the permit is released, so a new holder always finds it.
struct Slot {
    pool: std::sync::Arc<Pool>,
    memory: Option<Memory>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Slot {
    /// This slot's memory, allocated on the slot's first use (on the blocking thread).
    fn memory(&mut self) -> &mut [Block] {
        let blocks = self.pool.blocks;
        self.memory
            .get_or_insert_with(|| vec![Block::new(); blocks].into_boxed_slice())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(memory);
        }
    }
}

/// Hashes `password` with a fresh salt into `memory`: an argon2id PHC string.
fn hash_into(memory: &mut [Block], password: &[u8]) -> Result<String, PasswordError> {
    let salt = random_bytes::<16>();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2().hash_password_into_with_memory(password, &salt, &mut out, memory)?;
    phc_string(&salt, &out)
}

/// The argon2id PHC string, with [`argon2`]'s parameters, of `salt` and `output`.
fn phc_string(salt: &[u8], output: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(salt)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2().params())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(output)?),
    };
    Ok(phc.to_string())
}

/// The hash unknown users are verified against: a PHC string with the real parameters, a
/// random salt and a random output, so verifying against it costs a full argon2id run (the
/// same time as for a known user) and matches no password. Built without running argon2, so
/// start-up allocates no password memory (19 MiB an allocator may keep resident).
fn dummy_hash() -> Result<String, PasswordError> {
    phc_string(
        &random_bytes::<16>(),
        &random_bytes::<{ Params::DEFAULT_OUTPUT_LEN }>(),
    )
}

/// Recomputes the PHC string `phc` for `password` in `memory`, with the string's own
/// algorithm, version, parameters and salt, and compares the outputs in constant time.
/// `false` for a malformed string or one that needs more memory than a slot owns.
fn verify_into(memory: &mut [Block], password: &[u8], phc: &str) -> bool {
    let check = || -> Result<bool, PasswordError> {
        let parsed = PasswordHash::new(phc)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        if params.block_count() > memory.len() {
            tracing::warn!(
                m_cost = params.m_cost(),
                "a stored hash needs more memory than a slot"
            );
            return Ok(false);
        }
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, memory)?;
        Ok(ct_eq(&out, expected.as_bytes()))
    };
    check().unwrap_or(false)
}

/// Password hashing for the whole process: argon2id costs 19 MiB and tens of milliseconds per
/// call, so it runs in one slot per core (at least 2, at most [`MAX_PASSWORD_SLOTS`]), each
/// with its own memory, reused: password memory is bounded by `slots × 19 MiB` by design.
/// A caller that cannot get a slot within [`PASSWORD_SLOT_WAIT`] gets [`PasswordError::Busy`].
/// Also holds the dummy hash that unknown users are verified against.
#[derive(Clone)]
pub struct Passwords {
    dummy: std::sync::Arc<String>,
    pool: std::sync::Arc<Pool>,
}

impl Passwords {
    /// Makes the dummy hash (once, at startup) and sizes the slots to the machine.
    pub fn new() -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self::with_slots(cores.clamp(2, MAX_PASSWORD_SLOTS))
    }

    /// As [`Passwords::new`], with `slots` slots.
    fn with_slots(slots: usize) -> Result<Self, PasswordError> {
        let pool = std::sync::Arc::new(Pool {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(slots)),
            free: std::sync::Mutex::new(Vec::with_capacity(slots)),
            blocks: argon2().params().block_count(),
        });
        // No hash runs here: an idle server holds no password memory (19 MiB a slot) until
        // sign-ins need it.
        Ok(Self {
            dummy: std::sync::Arc::new(dummy_hash()?),
            pool,
        })
    }

    /// Takes a slot, waiting at most [`PASSWORD_SLOT_WAIT`].
    async fn slot(&self) -> Result<Slot, PasswordError> {
        let permit =
            tokio::time::timeout(PASSWORD_SLOT_WAIT, self.pool.slots.clone().acquire_owned())
                .await
                .map_err(|_| PasswordError::Busy)?
                .map_err(|_| PasswordError::Busy)?;
        let memory = self
            .pool
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        Ok(Slot {
            pool: self.pool.clone(),
            memory,
            _permit: permit,
        })
    }

    /// Runs `work` in a slot on the blocking pool. The slot moves into the blocking task, so
    /// it stays taken until the hash is done even when the request is cancelled meanwhile.
    async fn in_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let mut slot = self.slot().await?;
        Ok(tokio::task::spawn_blocking(move || work(slot.memory())).await?)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.in_slot(move |memory| hash_into(memory, password.as_bytes()))
            .await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when `hash` is `None`
    /// (and then answers `false`), on the blocking pool. Takes the same time either way.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.as_ref().clone());
        let ok = self
            .in_slot(move |memory| verify_into(memory, password.as_bytes(), &hash))
            .await?;
        Ok(ok && known)
    }
}

impl From<PasswordError> for crate::oauth::error::OAuthError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Busy => crate::oauth::error::OAuthError::unavailable(),
            other => crate::oauth::error::OAuthError::internal(&other),
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
        let passwords = Passwords::new().unwrap();
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
    async fn the_dummy_hash_costs_a_real_hash_and_matches_no_password() {
        let passwords = Passwords::new().unwrap();
        let real = passwords.hash("correct horse".into()).await.unwrap();
        let dummy = PasswordHash::new(passwords.dummy.as_str()).unwrap();
        let real = PasswordHash::new(&real).unwrap();
        // Same algorithm, version and parameters: verifying against it runs the same argon2id
        // (verify_into returns early only for a malformed or oversized hash).
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(
            dummy.hash.unwrap().len(),
            real.hash.unwrap().len(),
            "an output as long as a real one"
        );
        assert_eq!(
            dummy.salt.unwrap().as_str().len(),
            real.salt.unwrap().as_str().len(),
            "a salt as long as a real one"
        );
        let mut memory = vec![Block::new(); argon2().params().block_count()];
        assert!(!verify_into(&mut memory, b"", passwords.dummy.as_str()));
        // The run filled the memory: the hash was computed, not skipped.
        assert!(memory.iter().any(|b| b.as_ref().iter().any(|w| *w != 0)));
        // Each process makes its own.
        let other = Passwords::new().unwrap();
        assert_ne!(passwords.dummy, other.dummy);
    }

    #[tokio::test]
    async fn a_full_set_of_hashing_slots_answers_busy_instead_of_queueing_forever() {
        let passwords = Passwords::new().unwrap();
        let slots = passwords.pool.slots.clone();
        let held = slots
            .clone()
            .acquire_many_owned(slots.available_permits() as u32)
            .await
            .unwrap();
        tokio::time::pause();
        let waiting = passwords.verify("pw".into(), None);
        assert!(matches!(waiting.await, Err(PasswordError::Busy)));
        drop(held);
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crates_own_phc_hashing_and_verifying() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let passwords = Passwords::new().unwrap();
        let ours = passwords.hash("correct horse".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon2().verify_password(b"wrong", &parsed).is_err());

        let salt = SaltString::encode_b64(&random_bytes::<16>()).unwrap();
        let theirs = argon2()
            .hash_password(b"stored before", &salt)
            .unwrap()
            .to_string();
        assert!(
            passwords
                .verify("stored before".into(), Some(theirs.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("stored after".into(), Some(theirs))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn malformed_or_oversized_hashes_verify_as_false() {
        use argon2::PasswordHasher as _;
        let passwords = Passwords::new().unwrap();
        assert!(
            !passwords
                .verify("pw".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
        let big = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(19_456 * 2, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(&random_bytes::<16>()).unwrap();
        let hash = big.hash_password(b"password", &salt).unwrap().to_string();
        assert!(
            !passwords
                .verify("password".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn memory_is_allocated_once_per_slot_and_reused_by_every_later_hash() {
        let passwords = Passwords::with_slots(2).unwrap();
        // Making the dummy hash at startup takes no slot memory: an idle server holds none.
        assert!(passwords.pool.free.lock().unwrap().is_empty());
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        let checks = (0..8).map(|i| {
            let passwords = passwords.clone();
            let hash = hash.clone();
            tokio::spawn(async move { passwords.verify(format!("wrong{i}"), Some(hash)).await })
        });
        for check in checks {
            assert!(!check.await.unwrap().unwrap());
        }
        let free = passwords.pool.free.lock().unwrap();
        assert!((1..=2).contains(&free.len()), "{} buffers", free.len());
        assert!(
            free.iter()
                .all(|m| m.len() == argon2().params().block_count())
        );
    }
}
