//! The beers, with no poem in sight beyond the schema derives: each user's beers are one JSON
//! document in the [`Store`] under `locker:<sub>`, changed with compare-and-swap so every
//! change is atomic and touches one key. Input is checked here ([`BeerDraft::parse`]).

use std::{sync::Arc, time::Duration};

use poem_openapi::Object;
use serde::{Deserialize, Serialize};

use super::{MAX_BEERS, MAX_NAME_CHARS, MAX_QUANTITY, MAX_TYPE_CHARS, METADATA_PATH};
use crate::{
    crypto::{random_bytes, random_id},
    error::{ErrorCode, OAuthError},
    http::text::Text,
    store::{Store, StoreError},
    time::Clock,
    verify::Verifier,
};

/// How often a change to one locker is retried when concurrent changes keep winning.
const CAS_ATTEMPTS: u32 = 64;

/// A beer as stored and as shown.
#[derive(Object, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beer {
    /// Stable id, unique within the owner's locker.
    pub id: String,
    /// The beer's name.
    pub name: String,
    /// What kind of beer it is (lager, stout, ...).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// How many the locker holds.
    pub quantity: u32,
    /// When it was added (Unix seconds).
    pub created_at: u64,
    /// When it was last changed (Unix seconds).
    pub updated_at: u64,
}

/// A beer as the caller sends it, for `POST` (add) and `PUT` (replace).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, example)]
pub struct BeerInput {
    /// 1 to 100 characters, no control characters; surrounding spaces are dropped (at least
    /// one other character must remain).
    #[oai(validator(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub name: Text,
    /// 1 to 50 characters, no control characters; surrounding spaces are dropped (at least
    /// one other character must remain).
    #[oai(
        rename = "type",
        validator(
            min_length = 1,
            max_length = 50,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub kind: Text,
    /// 0 to 10000.
    #[oai(validator(minimum(value = "0"), maximum(value = "10000")))]
    pub quantity: u32,
}

impl poem_openapi::types::Example for BeerInput {
    fn example() -> Self {
        BeerInput {
            name: "Orval".into(),
            kind: "Trappist".into(),
            quantity: 6,
        }
    }
}

/// A validated [`BeerInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeerDraft {
    name: String,
    kind: String,
    quantity: u32,
}

impl BeerDraft {
    /// Checks lengths, characters and range; the error names the field.
    pub fn parse(input: &BeerInput) -> Result<Self, OAuthError> {
        let text = |field: &str, value: &str, max: usize| {
            let value = value.trim();
            let chars = value.chars().count();
            if chars == 0 || chars > max || value.chars().any(char::is_control) {
                return Err(OAuthError::invalid_request(format!(
                    "{field} must be 1 to {max} characters without control characters"
                )));
            }
            Ok(value.to_string())
        };
        if input.quantity > MAX_QUANTITY {
            return Err(OAuthError::invalid_request(format!(
                "quantity must be between 0 and {MAX_QUANTITY}"
            )));
        }
        Ok(Self {
            name: text("name", &input.name, MAX_NAME_CHARS)?,
            kind: text("type", &input.kind, MAX_TYPE_CHARS)?,
            quantity: input.quantity,
        })
    }
}

/// One user's beers: one store key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LockerDoc {
    beers: Vec<Beer>,
}

/// Everything the beer locker needs at request time. Cheap to clone.
#[derive(Clone)]
pub struct BeerLocker {
    /// The resource identifier (public base URL, no trailing slash).
    pub resource: String,
    /// Verifies access tokens against the issuer's JWKS.
    pub verifier: Verifier,
    /// Where lockers live.
    pub store: Arc<dyn Store>,
    /// Timestamps of beers.
    pub clock: Arc<dyn Clock>,
    /// Origins whose pages may call the API (`BEER_LOCKER_CORS_ORIGINS`).
    pub cors_origins: Arc<[String]>,
    /// The public client Swagger UI at `/docs` signs in with, if configured.
    pub docs_client_id: Option<String>,
}

impl std::fmt::Debug for BeerLocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeerLocker")
            .field("resource", &self.resource)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

fn not_found() -> OAuthError {
    OAuthError::not_found("no beer with this id in your locker")
}

fn is_beer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl BeerLocker {
    /// The RFC 9728 metadata URL of `resource` (which has no path).
    pub fn metadata_url(resource: &str) -> String {
        format!("{}{METADATA_PATH}", resource.trim_end_matches('/'))
    }

    fn key(owner: &str) -> String {
        crate::store::schema::locker(owner)
    }

    async fn load(&self, owner: &str) -> Result<LockerDoc, OAuthError> {
        let bytes = self.store.get(&Self::key(owner)).await?;
        Ok(decode_doc(bytes.as_deref())?)
    }

    /// Applies `change` to the owner's locker atomically (compare-and-swap, retried when
    /// another request changed the locker meanwhile).
    async fn update<R>(
        &self,
        owner: &str,
        mut change: impl FnMut(&mut LockerDoc) -> Result<R, OAuthError>,
    ) -> Result<R, OAuthError> {
        let key = Self::key(owner);
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Another request won the race: back off a random 0–15 ms so that a crowd of
                // writers to one locker spreads out instead of colliding again.
                let jitter = u64::from(random_bytes::<1>()[0] % 16);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let current = self.store.get(&key).await?;
            let mut doc = decode_doc(current.as_deref())?;
            let out = change(&mut doc)?;
            let new = if doc.beers.is_empty() {
                None
            } else {
                Some(serde_json::to_vec(&doc).map_err(|e| OAuthError::internal(&e))?)
            };
            let written = match (&current, &new) {
                (None, None) => true,
                (None, Some(new)) => self.store.put_new(&key, new, None).await?,
                (Some(cur), new) => {
                    self.store
                        .compare_and_swap(&key, cur, new.as_deref(), None)
                        .await?
                }
            };
            if written {
                return Ok(out);
            }
        }
        tracing::warn!(
            attempts = CAS_ATTEMPTS,
            "a locker kept changing under this request; giving up"
        );
        Err(OAuthError::unavailable())
    }

    /// Every beer of `owner`, oldest first.
    pub async fn list(&self, owner: &str) -> Result<Vec<Beer>, OAuthError> {
        Ok(self.load(owner).await?.beers)
    }

    /// One beer of `owner`.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Beer, OAuthError> {
        if !is_beer_id(id) {
            return Err(not_found());
        }
        self.load(owner)
            .await?
            .beers
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(not_found)
    }

    /// Adds a beer to `owner`'s locker.
    pub async fn add(&self, owner: &str, draft: BeerDraft) -> Result<Beer, OAuthError> {
        let now = self.clock.now();
        let beer = Beer {
            id: random_id(),
            name: draft.name,
            kind: draft.kind,
            quantity: draft.quantity,
            created_at: now,
            updated_at: now,
        };
        self.update(owner, |doc| {
            if doc.beers.len() >= MAX_BEERS {
                return Err(OAuthError::new(
                    ErrorCode::Conflict,
                    format!("a locker holds at most {MAX_BEERS} beers; remove one first"),
                ));
            }
            doc.beers.push(beer.clone());
            Ok(())
        })
        .await?;
        Ok(beer)
    }

    /// Replaces the name, type and quantity of one of `owner`'s beers.
    pub async fn replace(
        &self,
        owner: &str,
        id: &str,
        draft: BeerDraft,
    ) -> Result<Beer, OAuthError> {
        if !is_beer_id(id) {
            return Err(not_found());
        }
        let now = self.clock.now();
        self.update(owner, |doc| {
            let beer = doc
                .beers
                .iter_mut()
                .find(|b| b.id == id)
                .ok_or_else(not_found)?;
            beer.name.clone_from(&draft.name);
            beer.kind.clone_from(&draft.kind);
            beer.quantity = draft.quantity;
            beer.updated_at = now;
            Ok(beer.clone())
        })
        .await
    }

    /// Removes one of `owner`'s beers.
    pub async fn remove(&self, owner: &str, id: &str) -> Result<(), OAuthError> {
        if !is_beer_id(id) {
            return Err(not_found());
        }
        self.update(owner, |doc| {
            let before = doc.beers.len();
            doc.beers.retain(|b| b.id != id);
            if doc.beers.len() == before {
                Err(not_found())
            } else {
                Ok(())
            }
        })
        .await
    }
}

fn decode_doc(bytes: Option<&[u8]>) -> Result<LockerDoc, StoreError> {
    match bytes {
        None => Ok(LockerDoc::default()),
        Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, kind: &str, quantity: u32) -> BeerInput {
        BeerInput {
            name: name.into(),
            kind: kind.into(),
            quantity,
        }
    }

    #[test]
    fn drafts_trim_and_bound_their_fields() {
        let ok =
            BeerDraft::parse(&input("  Orval ", "trappist", 6)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok,
            BeerDraft {
                name: "Orval".into(),
                kind: "trappist".into(),
                quantity: 6
            }
        );
        assert!(BeerDraft::parse(&input("   ", "ale", 1)).is_err());
        assert!(BeerDraft::parse(&input(&"x".repeat(101), "ale", 1)).is_err());
        assert!(
            BeerDraft::parse(&input(&"é".repeat(100), "ale", 1)).is_ok(),
            "characters, not bytes"
        );
        assert!(BeerDraft::parse(&input("a\u{0}b", "ale", 1)).is_err());
        assert!(BeerDraft::parse(&input("a", "ale", MAX_QUANTITY + 1)).is_err());
    }

    #[test]
    fn beer_ids_are_short_url_safe_tokens() {
        assert!(is_beer_id(&random_id()));
        assert!(!is_beer_id(""));
        assert!(!is_beer_id("../x"));
        assert!(!is_beer_id(&"a".repeat(65)));
    }
}
