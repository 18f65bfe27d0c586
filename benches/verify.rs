//! Verification throughput of `hallpass::verify` (placeholder).

fn main() {}
