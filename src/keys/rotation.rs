//! Key lifecycle over time: creating the next key (`hallpass keys rotate` and the automatic
//! schedule), retiring one by hand, loading the directory at startup and re-reading it on
//! every instance so that a key added anywhere is published everywhere.
//!
//! File-system work and RSA key generation block, so the async entry points here
//! ([`load_at_startup`], [`rotate_if_due`], [`spawn_reloader`]) run them with
//! `spawn_blocking`, never on a runtime worker thread.

use std::{fs, path::Path, time::Duration};

use super::{KeyError, KeySet, KeyState, SigningKey, files};
use crate::{config::Config, error::OAuthError, jose::Algorithm, state::AppState};

/// How often every instance re-reads the keys directory.
pub const KEY_RELOAD_SECS: u64 = 10;

/// The longest access-token lifetime the configuration allows (`HALLPASS_ACCESS_TOKEN_TTL`).
pub const MAX_TOKEN_LIFETIME: u64 = 86_400;

/// How far ahead of signing a rotated key is published: one JWKS `max-age`, one reload
/// interval for every instance to see the file, and a minute of margin for clock skew.
pub fn rotation_lead(jwks_max_age: u64) -> u64 {
    jwks_max_age + KEY_RELOAD_SECS + 60
}

/// Runs blocking key work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(KeyError::Task(e.to_string())))
}

/// Creates the next key of `alg`, signing from `now + lead`, and deletes the files of keys
/// retired by hand, or superseded longer ago than [`MAX_TOKEN_LIFETIME`]. `lead` must be at
/// least the JWKS `max-age`. Blocks (file system, RSA generation).
pub fn rotate(
    dir: &Path,
    alg: Algorithm,
    now: u64,
    lead: u64,
    token_lifetime: u64,
) -> Result<SigningKey, KeyError> {
    let set = KeySet::load(dir)?;
    // Files are deleted only once no token any configuration could have issued is alive:
    // the command may run with another HALLPASS_ACCESS_TOKEN_TTL than the servers.
    let lifetime = token_lifetime.max(MAX_TOKEN_LIFETIME);
    for k in set.all() {
        if set.state_of(k, now, lifetime) == KeyState::Retired {
            for ext in ["pem", "json"] {
                let path = dir.join(format!("{}.{ext}", k.kid));
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(KeyError::Io { path, source }),
                }
            }
        }
    }
    let (key, der) =
        SigningKey::generate(alg, now, now + lead).map_err(|reason| KeyError::Invalid {
            path: dir.into(),
            reason,
        })?;
    key.write(dir, &der)?;
    Ok(key)
}

/// Retires the key `kid` at `now`: it leaves the JWKS and never signs again. Refused when no
/// other key could sign, unless `force`.
pub fn retire(dir: &Path, kid: &str, now: u64, force: bool) -> Result<(), KeyError> {
    let set = KeySet::load(dir)?;
    let key = set
        .all()
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| KeyError::Invalid {
            path: dir.join(format!("{kid}.pem")),
            reason: "no key with this kid".into(),
        })?;
    let others_can_sign = set.signing_candidates(now).any(|k| k.kid != kid);
    if !others_can_sign && !force {
        return Err(KeyError::Invalid {
            path: dir.join(format!("{kid}.pem")),
            reason: "it is the only key that can sign now; run `hallpass keys generate` first, or pass --force".into(),
        });
    }
    let mut meta = key.meta.clone();
    meta.retired_at = Some(now);
    files::write_meta(&dir.join(format!("{kid}.json")), &meta)
}

/// The keys the server starts with: the keys directory, or a new key written there when it
/// is empty (development; logged as a warning).
pub async fn load_at_startup(config: &Config, now: u64) -> Result<KeySet, KeyError> {
    let (dir, alg) = (config.keys_dir.clone(), config.signing_alg);
    let (keys, generated) = blocking(move || KeySet::load_or_generate(&dir, alg, now)).await?;
    if generated {
        tracing::warn!(dir = %config.keys_dir.display(), alg = alg.as_str(), "generated a new signing key (development); production should mount its keys");
    }
    Ok(keys)
}

/// Re-reads the keys directory into `state` off the runtime's workers. On error the old set
/// stays.
pub async fn reload(state: &AppState) -> Result<(), KeyError> {
    let dir = state.config.keys_dir.clone();
    let keys = blocking(move || KeySet::load(&dir)).await?;
    state.set_keys(keys);
    Ok(())
}

/// Every [`KEY_RELOAD_SECS`], re-reads the keys directory and runs [`rotate_if_due`], for as
/// long as the runtime lives.
pub fn spawn_reloader(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(KEY_RELOAD_SECS));
        loop {
            tick.tick().await;
            if let Err(e) = reload(&state).await {
                tracing::error!(error = %e, "reloading the keys directory failed; keeping the previous keys");
            }
            if let Err(e) = rotate_if_due(&state).await {
                tracing::error!(error = %e, "scheduled key rotation failed; retrying at the next tick");
            }
        }
    });
}

/// The automatic schedule (`HALLPASS_KEY_ROTATION_DAYS`): when the active key has signed
/// for nearly a period and no next key is waiting, creates one so that it takes over when
/// the period ends. Instances need no leader: the first to claim the rotation in the store
/// makes the key, the others see it at their next reload. Returns the new key's kid.
pub async fn rotate_if_due(state: &AppState) -> Result<Option<String>, OAuthError> {
    let Some(period) = state.config.key_rotation_secs else {
        return Ok(None);
    };
    let now = state.now();
    let lead = rotation_lead(state.config.jwks_max_age);
    let keys = state.keys();
    let Ok(active) = keys.active(now) else {
        return Ok(None);
    };
    let ttl = state.config.access_token_ttl;
    let next_waiting = keys
        .all()
        .iter()
        .any(|k| keys.state_of(k, now, ttl) == KeyState::Next);
    if next_waiting || now + lead < active.meta.not_before + period {
        return Ok(None);
    }
    let claim = crate::store::schema::key_rotation(&active.kid);
    if !state
        .store
        .put_new(&claim, b"1", Some(Duration::from_secs(lead)))
        .await?
    {
        return Ok(None);
    }
    let (dir, alg) = (state.config.keys_dir.clone(), state.config.signing_alg);
    let key = blocking(move || rotate(&dir, alg, now, lead, ttl))
        .await
        .map_err(|e| OAuthError::internal(&e))?;
    tracing::info!(kid = %key.kid, not_before = key.meta.not_before, "scheduled key rotation: next key published");
    reload(state).await.map_err(|e| OAuthError::internal(&e))?;
    Ok(Some(key.kid))
}
