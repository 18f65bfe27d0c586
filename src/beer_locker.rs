//! The beer locker resource server (placeholder).
