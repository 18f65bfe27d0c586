//! Serving connections with bounds an attacker cannot stretch: a header-read timeout, an idle
//! keep-alive timeout and a cap on concurrent connections below the file-descriptor limit.
//!
//! poem's own `Server` only offers an inactivity timeout (no I/O at all for N seconds), which
//! a client dripping one byte every few seconds defeats, so [`serve`] accepts connections
//! itself and hands each to hyper-util's `auto` builder (HTTP/1.1 and h2c, as poem does),
//! calling the poem endpoint through poem's public conversions (`http::Request<Incoming>` plus
//! addresses into `poem::Request`, `poem::Response` into `http::Response`).
//!
//! Every connection runs under a watchdog with one deadline at a time:
//!
//! - from accept, the first request head must be complete within the header-read timeout
//!   (a client that sends nothing, or drips header lines, is closed then);
//! - after a response, the next request's first byte must arrive within the idle timeout,
//!   and once it has, that head must be complete within the header-read timeout;
//! - while a request is being handled there is no connection deadline: the body-read
//!   timeout is enforced where the body is read ([`crate::startup::BodyLimit`], 408).
//!
//! A connection past its deadline is dropped (it has no request in flight, so nothing is
//! lost). hyper's own `header_read_timeout` is not used: it also runs while a keep-alive
//! connection waits for its next request, so it cannot express a longer idle timeout, and it
//! does not cover the bytes the `auto` builder reads to tell HTTP/1.1 from HTTP/2.
//!
//! Connections beyond the cap are not accepted: they wait in the kernel's listen backlog and
//! are served as soon as a slot frees. [`raise_fd_limit`] raises the soft `RLIMIT_NOFILE` to
//! the hard limit and [`connection_cap`] derives the default cap from it, keeping
//! [`FD_RESERVE`] descriptors for files, Redis and key reloads.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use poem::{Endpoint, Response, listener::Acceptor};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{Notify, Semaphore, watch},
    time::Instant,
};

use crate::config::Config;

/// Descriptors kept free below the soft limit when the cap is derived: the keys directory
/// and session secret read at each reload, the Redis connection, logs, the runtime's own.
pub const FD_RESERVE: u64 = 128;

/// Default header-read timeout: a real client sends its whole head in one round trip.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Default body-read timeout: the largest accepted body (64 KiB) crosses even a slow mobile
/// link within it.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default idle keep-alive timeout: above the 60 s idle timeout of common load balancers
/// (AWS ALB, GCP), which expect the backend to keep a connection longer than they do.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// How long a graceful shutdown waits for connections to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a body not received within `timeout`: 408 with the RFC error shape, and
/// `Connection: close`, since the rest of the body is never read.
pub fn body_timeout_response(timeout: Duration) -> Response {
    let err =
        crate::error::HttpError::from(crate::oauth::error::OAuthError::invalid_request(format!(
            "the request body was not received within {} seconds",
            timeout.as_secs_f64()
        )))
        .with_status(408);
    let mut resp = err.to_response();
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

/// The bounds [`serve`] enforces on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most connections served at once; `None` derives it from the fd limit.
    pub max_connections: Option<usize>,
    /// How long a graceful shutdown waits for open connections.
    pub drain_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// The process's open-file limits after [`raise_fd_limit`]; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit in force.
    pub soft: Option<u64>,
    /// The hard limit.
    pub hard: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (logging a failure, which leaves the soft
/// limit as it was) and returns the limits in force.
pub fn raise_fd_limit() -> FdLimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, soft = ?before.current, hard = ?before.maximum,
                "could not raise the soft open-file limit to the hard limit");
        }
    }
    let now = getrlimit(Resource::Nofile);
    FdLimit {
        soft: now.current,
        hard: now.maximum,
    }
}

/// The connection cap: `configured` when it stays [`FD_RESERVE`] below the soft limit, else
/// (and by default) the soft limit minus the reserve (minus half the limit when it is tiny).
pub fn connection_cap(configured: Option<usize>, soft: Option<u64>) -> usize {
    let ceiling = soft.map_or(u64::from(u32::MAX), |s| {
        s.saturating_sub(FD_RESERVE.min(s / 2))
    });
    let ceiling = usize::try_from(ceiling.clamp(1, u64::from(u32::MAX))).unwrap_or(1);
    match configured {
        Some(n) if n > ceiling => {
            tracing::warn!(
                configured = n,
                cap = ceiling,
                "HALLPASS_MAX_CONNECTIONS is too close to the open-file limit; using the cap below it"
            );
            ceiling
        }
        Some(n) => n.max(1),
        None => ceiling,
    }
}

/// Serves `endpoint` on `acceptor` within `limits` until `shutdown` resolves, then stops
/// accepting, lets open connections finish (at most `limits.drain_timeout`) and returns.
pub async fn serve<A, E>(
    mut acceptor: A,
    endpoint: E,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    A: Acceptor,
    E: Endpoint<Output = Response> + 'static,
{
    let fd = raise_fd_limit();
    let cap = connection_cap(limits.max_connections, fd.soft);
    tracing::info!(
        fd_soft = ?fd.soft,
        fd_hard = ?fd.hard,
        max_connections = cap,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "connection limits"
    );
    let endpoint = Arc::new(endpoint);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = acceptor.accept() => accepted,
        };
        match accepted {
            Ok((io, local, remote, scheme)) => {
                let conn = Conn {
                    endpoint: endpoint.clone(),
                    local,
                    remote,
                    scheme,
                    limits,
                    stop: stop_rx.clone(),
                };
                tokio::spawn(async move {
                    conn.run(io).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                tracing::warn!(error = %e, "accepting a connection failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(acceptor);
    let _ = stop_tx.send(());
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// One accepted connection and what it needs to serve.
struct Conn<E> {
    endpoint: Arc<E>,
    local: poem::web::LocalAddr,
    remote: poem::web::RemoteAddr,
    scheme: http::uri::Scheme,
    limits: ConnectionLimits,
    stop: watch::Receiver<()>,
}

impl<E: Endpoint<Output = Response> + 'static> Conn<E> {
    /// Serves the connection until it ends, misses its deadline, or the server drains.
    async fn run<Io>(self, io: Io)
    where
        Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Conn {
            endpoint,
            local,
            remote,
            scheme,
            limits,
            mut stop,
        } = self;
        let watchdog = Arc::new(Watchdog::new(limits));
        let service = hyper::service::service_fn({
            let watchdog = watchdog.clone();
            let remote = remote.clone();
            move |req: http::Request<Incoming>| {
                let guard = InFlight::start(watchdog.clone());
                let endpoint = endpoint.clone();
                let req = poem::Request::from((req, local.clone(), remote.clone(), scheme.clone()));
                async move {
                    let resp = endpoint.get_response(req).await;
                    drop(guard);
                    Ok::<_, Infallible>(http::Response::from(resp))
                }
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_pending_accept_reset_streams(20)
            .max_header_list_size(16_384);
        let io = Watched {
            inner: io,
            watchdog: watchdog.clone(),
        };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            let notified = watchdog.changed.notified();
            let deadline = watchdog.deadline();
            tokio::select! {
                _ = conn.as_mut() => return,
                () = notified => {}
                () = sleep_until(deadline) => {
                    if watchdog.deadline().is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(remote_addr = %remote, "closing a connection past its header-read or idle timeout");
                        return;
                    }
                }
                _ = stop.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its deadline.
#[derive(Debug)]
struct Phase {
    /// Requests being handled (more than one only on HTTP/2).
    in_flight: usize,
    /// When the connection was accepted, or its last response was ready.
    since: Instant,
    /// Whether a response was ever sent (after that, idle waits use the idle timeout).
    served_any: bool,
    /// When the first byte of the next request arrived, after a response.
    head_started: Option<Instant>,
}

/// A connection's deadline, moved by its reads and requests.
struct Watchdog {
    limits: ConnectionLimits,
    phase: Mutex<Phase>,
    /// Woken whenever the deadline may have moved.
    changed: Notify,
}

impl Watchdog {
    fn new(limits: ConnectionLimits) -> Self {
        Watchdog {
            limits,
            phase: Mutex::new(Phase {
                in_flight: 0,
                since: Instant::now(),
                served_any: false,
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut phase)
    }

    /// When the connection must be closed, if nothing changes; `None` while a request runs.
    fn deadline(&self) -> Option<Instant> {
        let limits = self.limits;
        self.with(|p| {
            if p.in_flight > 0 {
                None
            } else if !p.served_any {
                Some(p.since + limits.header_read_timeout)
            } else if let Some(started) = p.head_started {
                Some(started + limits.header_read_timeout)
            } else {
                Some(p.since + limits.idle_timeout)
            }
        })
    }

    /// Bytes arrived: while idle after a response, they start the next request's head.
    fn on_read(&self) {
        let moved = self.with(|p| {
            let starts_head = p.in_flight == 0 && p.served_any && p.head_started.is_none();
            if starts_head {
                p.head_started = Some(Instant::now());
            }
            starts_head
        });
        if moved {
            self.changed.notify_one();
        }
    }
}

/// Marks a request in flight from its head until its response is ready (also when the
/// handler's future is dropped).
struct InFlight(Arc<Watchdog>);

impl InFlight {
    fn start(watchdog: Arc<Watchdog>) -> Self {
        watchdog.with(|p| {
            p.in_flight += 1;
            p.head_started = None;
        });
        watchdog.changed.notify_one();
        InFlight(watchdog)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|p| {
            p.in_flight = p.in_flight.saturating_sub(1);
            if p.in_flight == 0 {
                p.since = Instant::now();
                p.served_any = true;
            }
        });
        self.0.changed.notify_one();
    }
}

/// The socket, reporting its reads to the watchdog.
struct Watched<Io> {
    inner: Io,
    watchdog: Arc<Watchdog>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watchdog.on_read();
        }
        polled
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(75),
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn cap_is_the_soft_limit_minus_the_reserve_and_never_above_it() {
        assert_eq!(connection_cap(None, Some(1024)), 896);
        assert_eq!(connection_cap(Some(100), Some(1024)), 100);
        assert_eq!(connection_cap(Some(5000), Some(1024)), 896);
        assert_eq!(connection_cap(None, Some(100)), 50);
        assert_eq!(connection_cap(Some(0), Some(1024)), 1);
        assert!(connection_cap(None, None) > 1_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let w = Watchdog::new(limits());
        let accepted = Instant::now();
        assert_eq!(w.deadline(), Some(accepted + Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(2)).await;
        w.on_read();
        // Dripping bytes does not extend the first head's deadline.
        assert_eq!(w.deadline(), Some(accepted + Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_response_the_idle_timeout_runs_until_the_next_head_starts() {
        let w = Arc::new(Watchdog::new(limits()));
        let guard = InFlight::start(w.clone());
        assert_eq!(w.deadline(), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(guard);
        let done = Instant::now();
        assert_eq!(w.deadline(), Some(done + Duration::from_secs(75)));
        tokio::time::advance(Duration::from_secs(10)).await;
        w.on_read();
        let started = Instant::now();
        assert_eq!(w.deadline(), Some(started + Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(1)).await;
        w.on_read();
        assert_eq!(w.deadline(), Some(started + Duration::from_secs(5)));
    }
}
