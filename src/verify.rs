//! The offline verifier resource servers embed (placeholder).
