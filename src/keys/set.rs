//! The keys of a deployment and the state each is in at a given moment (see the lifecycle in
//! [`super`]), derived from the keys' own timestamps so that every instance agrees.

use std::{path::Path, sync::Arc};

use super::{KeyError, SigningKey, files};
use crate::jose::{Algorithm, Jwks, LEEWAY};

/// Where a key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing.
    Active,
    /// Published so that tokens it signed keep verifying; no longer signing.
    Retiring,
    /// Gone from the JWKS.
    Retired,
}

impl KeyState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    /// Whether the JWKS publishes a key in this state.
    pub fn is_published(self) -> bool {
        !matches!(self, KeyState::Retired)
    }
}

/// All keys of a deployment.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    /// A set of the given keys (tests build keys in memory).
    pub fn from_keys(keys: Vec<SigningKey>) -> Self {
        let mut keys: Vec<_> = keys.into_iter().map(Arc::new).collect();
        keys.sort_by(|a, b| {
            b.meta
                .not_before
                .cmp(&a.meta.not_before)
                .then(a.kid.cmp(&b.kid))
        });
        Self { keys }
    }

    /// Reads every `*.pem` in `dir`. Files that are not keys are an error, with the path.
    /// Blocks on the file system.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        files::load_dir(dir).map(Self::from_keys)
    }

    /// Loads `dir`; when it holds no key at all, generates a key of `alg` that signs from
    /// `now` and writes it there (the development path). A directory with keys but none able
    /// to sign is an error, never silently patched. Returns the set and whether a key was made.
    /// Blocks (file system, RSA generation).
    pub fn load_or_generate(
        dir: &Path,
        alg: Algorithm,
        now: u64,
    ) -> Result<(Self, bool), KeyError> {
        let set = Self::load(dir)?;
        if !set.keys.is_empty() {
            // Mounted keys are never supplemented behind the operator's back.
            set.active(now)?;
            return Ok((set, false));
        }
        let (key, der) =
            SigningKey::generate(alg, now, now).map_err(|reason| KeyError::Invalid {
                path: dir.into(),
                reason,
            })?;
        key.write(dir, &der)?;
        Ok((Self::load(dir)?, true))
    }

    /// The keys that may sign at `now` (begun, not retired by hand), newest first.
    pub(super) fn signing_candidates(&self, now: u64) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(move |k| k.meta.not_before <= now && k.meta.retired_at.is_none_or(|r| r > now))
    }

    /// The key that signs at `now`: the latest `not_before` that has passed, not retired.
    pub fn active(&self, now: u64) -> Result<&Arc<SigningKey>, KeyError> {
        self.signing_candidates(now)
            .next()
            .ok_or(KeyError::NoActiveKey)
    }

    /// The state of `key` at `now`, given the longest lifetime of a token it may have signed.
    pub fn state_of(&self, key: &SigningKey, now: u64, token_lifetime: u64) -> KeyState {
        if key.meta.retired_at.is_some_and(|r| r <= now) {
            return KeyState::Retired;
        }
        if key.meta.not_before > now {
            return KeyState::Next;
        }
        // Superseded when the first newer key began to sign.
        let superseded_at = self
            .signing_candidates(now)
            .filter(|k| {
                k.meta.not_before > key.meta.not_before
                    || (k.meta.not_before == key.meta.not_before && k.kid < key.kid)
            })
            .map(|k| k.meta.not_before)
            .min();
        match superseded_at {
            None => KeyState::Active,
            Some(t) if now < t + token_lifetime + LEEWAY => KeyState::Retiring,
            Some(_) => KeyState::Retired,
        }
    }

    /// The key with this `kid`, if it is published at `now`.
    pub fn find_published(
        &self,
        kid: &str,
        now: u64,
        token_lifetime: u64,
    ) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .filter(|k| self.state_of(k, now, token_lifetime).is_published())
    }

    /// Every key, newest `not_before` first.
    pub fn all(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The JWKS document (RFC 7517 §5): every key published at `now`.
    pub fn jwks(&self, now: u64, token_lifetime: u64) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter(|k| self.state_of(k, now, token_lifetime).is_published())
                .map(|k| k.jwk().clone())
                .collect(),
        }
    }
}
