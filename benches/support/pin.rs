//! Pinning for one-core measurements (`BENCH_PIN=1`, Linux): the server's threads on CPU 0,
//! the load generator's on CPU 1, the signing reference measured on CPU 0 too, so
//! "tokens/s" and "signatures/s" are read off the same core. Redis is a separate process:
//! pin it outside (`taskset -cp 1 $(pgrep -x redis-server)`).

/// Whether `BENCH_PIN` asks for pinning.
pub fn enabled() -> bool {
    std::env::var("BENCH_PIN").is_ok_and(|v| v == "1")
}

/// Pins the calling thread to `cpu` when pinning is on; a no-op otherwise. An error (an
/// offline CPU, a container's cpuset) is printed once per thread and ignored: the run is then
/// unpinned, and says so.
pub fn this_thread(cpu: usize) {
    if !enabled() {
        return;
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("BENCH_PIN: cannot pin a thread to CPU {cpu}: {e}");
    }
}
