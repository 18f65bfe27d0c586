//! The keys directory on disk: `<kid>.pem` (PKCS#8, mode 0600) and its `<kid>.json`
//! metadata, written atomically (temporary file, fsync, rename), read back into keys.
//!
//! Everything here blocks on the file system (and [`SigningKey::generate`] on RSA): async
//! callers go through `spawn_blocking` (see [`super::rotation`]).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use super::{KeyError, KeyMeta, SigningKey};

impl SigningKey {
    /// Writes the key as `<kid>.pem` (mode 0600) and `<kid>.json` into `dir`.
    pub fn write(&self, dir: &Path, der: &[u8]) -> Result<PathBuf, KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        // The metadata first: an instance reloading in between must never see the key without
        // its `not_before` (it would take the file's time and sign before being published).
        let meta_path = dir.join(format!("{}.json", self.kid));
        write_meta(&meta_path, &self.meta)?;
        let pem_path = dir.join(format!("{}.pem", self.kid));
        write_private(&pem_path, to_pem(der).as_bytes())?;
        Ok(pem_path)
    }
}

/// Writes `meta` as pretty JSON to `path` (mode 0600).
pub(super) fn write_meta(path: &Path, meta: &KeyMeta) -> Result<(), KeyError> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(|e| KeyError::Invalid {
        path: path.into(),
        reason: e.to_string(),
    })?;
    write_private(path, &bytes)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn from_pem(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let body: String = pem.get(start..end)?.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Reads every `*.pem` in `dir` (none when `dir` does not exist). Files that are not keys are
/// an error, with the path.
pub(super) fn load_dir(dir: &Path) -> Result<Vec<SigningKey>, KeyError> {
    let io = |source| KeyError::Io {
        path: dir.into(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        keys.push(load_key(&path)?);
    }
    Ok(keys)
}

fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.into(),
        reason,
    };
    let pem = fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    let der = from_pem(&pem).ok_or_else(|| {
        invalid("expected a PKCS#8 PEM block (-----BEGIN PRIVATE KEY-----)".into())
    })?;
    let meta_path = path.with_extension("json");
    let meta: Option<KeyMeta> = match fs::read(&meta_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid {
                path: meta_path.clone(),
                reason: e.to_string(),
            })?,
        ),
        Err(_) => None,
    };
    let (created, not_before, retired_at) = match &meta {
        Some(m) => (m.created_at, m.not_before, m.retired_at),
        // A mounted key without metadata signs from its file's modification time.
        None => {
            let t = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            (t, t, None)
        }
    };
    let mut key = SigningKey::from_pkcs8(&der, created, not_before).map_err(invalid)?;
    key.meta.retired_at = retired_at;
    if let Some(m) = meta {
        if m.alg != key.meta.alg {
            return Err(invalid(format!(
                "metadata says {} but the key is {}",
                m.alg.as_str(),
                key.meta.alg.as_str()
            )));
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::Algorithm;

    #[test]
    fn generated_keys_of_every_algorithm_round_trip_through_pem() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let (key, der) = SigningKey::generate(alg, 1, 1).unwrap_or_else(|e| panic!("{e}"));
            let pem = to_pem(&der);
            let back = SigningKey::from_pkcs8(&from_pem(&pem).unwrap_or_default(), 1, 1)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.kid, key.kid);
            assert_eq!(back.meta.alg, alg);
            assert_eq!(back.jwk().kid, key.kid);
            assert_eq!(back.jwk(), key.jwk());
        }
    }
}
