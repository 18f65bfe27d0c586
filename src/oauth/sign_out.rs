//! Ending browser sessions: sign-out of one session and "sign out everywhere" for a user.
//!
//! A session is a signed cookie ([`Session`]) with a random id and its issue time
//! (`auth_time`). The cookie alone would stay valid for its whole lifetime, so the store keeps
//! one record per user, `sessions:<user id>` ([`schema::sessions`]):
//! - `ended`: ids of sessions ended by `POST /logout`, each with the time the session would
//!   have expired anyway (pruned after that);
//! - `not_before`: set by [`end_all`]; every session issued at or before it is ended (a
//!   sign-in in the very same second is ended too: the clock has one-second steps).
//!
//! Checking a session ([`is_ended`]) is one store read. The record lives as long as a
//! session (`HALLPASS_SESSION_TTL`), since every session it could end has expired by then.
//! Updates are compare-and-swap on the one key, so concurrent sign-outs never lose each other.
//!
//! Access tokens are not sessions: signing out of one session leaves tokens already issued
//! to applications alone. Signing out everywhere also refuses every access token of the user
//! issued so far, here and at resource servers through the revocation feed
//! ([`token_cutoff::signed_out_everywhere`](crate::oauth::token_cutoff::signed_out_everywhere));
//! refresh tokens stay (withdraw consent to stop one application for good).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    oauth::{error::OAuthError, session::Session},
    state::AppState,
    store::{Prefetched, schema},
};

/// Most ended session ids kept per user. Past it, the next sign-out ends every session of the
/// user (never fewer than asked).
pub const MAX_ENDED: usize = 64;
/// Compare-and-swap attempts before answering 503.
const MAX_ATTEMPTS: usize = 16;

/// The stored record of one user's ended sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSessions {
    /// Sessions issued at or before this time (Unix seconds) are ended; 0 for none.
    #[serde(default)]
    pub not_before: u64,
    /// Ended session ids with the time each would have expired.
    #[serde(default)]
    pub ended: Vec<(String, u64)>,
}

impl EndedSessions {
    /// Whether `session` is ended by this record. A session without an id is always ended.
    pub fn ends(&self, session: &Session) -> bool {
        session.sid.is_empty()
            || session.auth_time <= self.not_before
            || self.ended.iter().any(|(sid, _)| *sid == session.sid)
    }

    fn prune(&mut self, now: u64) {
        self.ended.retain(|(_, exp)| *exp > now);
    }
}

/// Whether `session` was ended by a sign-out (one store read, or none when `pre` holds it).
pub async fn is_ended(
    state: &AppState,
    session: &Session,
    pre: &mut Prefetched,
) -> Result<bool, OAuthError> {
    if session.sid.is_empty() {
        return Ok(true);
    }
    let raw = pre
        .get(state.store.as_ref(), &schema::sessions(&session.sub))
        .await?;
    Ok(raw
        .map(|raw| parse(&raw))
        .transpose()?
        .is_some_and(|r| r.ends(session)))
}

/// Ends one session (`POST /logout`) until it would have expired.
#[tracing::instrument(skip_all, fields(user_id = %session.sub))]
pub async fn end(state: &AppState, session: &Session) -> Result<(), OAuthError> {
    let now = state.now();
    let exp = session.auth_time + state.config.session_ttl;
    update(state, &session.sub, |r| {
        r.prune(now);
        if r.ended.len() >= MAX_ENDED {
            r.not_before = now;
            r.ended.clear();
        } else if !r.ended.iter().any(|(sid, _)| *sid == session.sid) {
            r.ended.push((session.sid.clone(), exp));
        }
    })
    .await?;
    tracing::info!("session ended");
    Ok(())
}

/// Ends every session of `user_id` issued up to now ("sign out everywhere") and refuses
/// every access token of the user issued up to now. Sessions signed in and tokens issued
/// afterwards are not affected.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn end_all(state: &AppState, user_id: &str) -> Result<(), OAuthError> {
    let now = state.now();
    update(state, user_id, |r| {
        r.not_before = r.not_before.max(now);
        r.ended.clear();
    })
    .await?;
    crate::oauth::token_cutoff::signed_out_everywhere(state, user_id).await?;
    tracing::info!("every session of the user ended");
    Ok(())
}

/// The record and its raw bytes (for the compare-and-swap).
async fn read(
    state: &AppState,
    user_id: &str,
) -> Result<Option<(EndedSessions, Vec<u8>)>, OAuthError> {
    let Some(raw) = state.store.get(&schema::sessions(user_id)).await? else {
        return Ok(None);
    };
    Ok(Some((parse(&raw)?, raw)))
}

fn parse(raw: &[u8]) -> Result<EndedSessions, OAuthError> {
    serde_json::from_slice(raw).map_err(|e| OAuthError::internal(&e))
}

async fn update(
    state: &AppState,
    user_id: &str,
    change: impl Fn(&mut EndedSessions),
) -> Result<(), OAuthError> {
    let key = schema::sessions(user_id);
    let ttl = Some(Duration::from_secs(state.config.session_ttl.max(1)));
    for _ in 0..MAX_ATTEMPTS {
        let current = read(state, user_id).await?;
        let mut record = current.as_ref().map(|(r, _)| r.clone()).unwrap_or_default();
        change(&mut record);
        let bytes = serde_json::to_vec(&record).map_err(|e| OAuthError::internal(&e))?;
        let done = match &current {
            None => state.store.put_new(&key, &bytes, ttl).await?,
            Some((_, raw)) => {
                state
                    .store
                    .compare_and_swap(&key, raw, Some(&bytes), ttl)
                    .await?
            }
        };
        if done {
            return Ok(());
        }
    }
    tracing::warn!("sessions record kept changing; sign-out not recorded");
    Err(OAuthError::unavailable())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, auth_time: u64) -> Session {
        Session {
            sub: "u".into(),
            auth_time,
            sid: sid.into(),
            user: String::new(),
        }
    }

    #[test]
    fn a_record_ends_listed_ids_older_sessions_and_sessions_without_id() {
        let r = EndedSessions {
            not_before: 100,
            ended: vec![("gone".into(), 500)],
        };
        assert!(r.ends(&session("gone", 200)));
        assert!(r.ends(&session("old", 100)));
        assert!(r.ends(&session("", 300)));
        assert!(!r.ends(&session("live", 101)));
    }

    #[test]
    fn pruning_drops_only_entries_past_their_session_expiry() {
        let mut r = EndedSessions {
            not_before: 0,
            ended: vec![("a".into(), 10), ("b".into(), 11)],
        };
        r.prune(10);
        assert_eq!(r.ended, vec![("b".to_string(), 11)]);
    }
}
