//! The beer locker: the tutorial's protected API as a separate resource server (placeholder).

fn main() {}
