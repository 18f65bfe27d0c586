//! How the Redis store reaches Redis: one node (`REDIS_URL`) or a Redis Cluster
//! (`REDIS_CLUSTER_URLS`), each over `redis://` or `rediss://` (TLS through rustls, with an
//! optional private CA), with explicit connection and response timeouts.
//!
//! [`Conn`] is the one connection type the store uses for both kinds: it implements redis-rs's
//! [`ConnectionLike`] by delegating to a [`ConnectionManager`] or an async
//! [`ClusterConnection`]. [`describe`] turns a redis-rs error into a sentence for operators
//! (wrong password, DB index out of range, TLS failure, unreachable node) and says whether it
//! can heal by itself ([`Problem`]).

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    task::Poll,
    time::Duration,
};

use redis::{
    Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};
use tokio::sync::oneshot;

/// Where Redis is.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One node (`REDIS_URL`).
    Node(String),
    /// A Redis Cluster, by its seed URLs (`REDIS_CLUSTER_URLS`).
    Cluster(Vec<String>),
}

/// Everything the Redis store needs to connect. The URLs may hold a password: never log them
/// (the `Debug` shows hosts only).
#[derive(Clone)]
pub struct RedisOptions {
    /// One node or a cluster.
    pub target: RedisTarget,
    /// Prefix of every key (`HALLPASS_REDIS_PREFIX`).
    pub prefix: String,
    /// PEM file of the CA that signed the Redis servers' certificates, for `rediss://` with a
    /// private CA (`HALLPASS_REDIS_CA_FILE`); unset: the public web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Time to open one connection (`HALLPASS_REDIS_CONNECT_TIMEOUT_MS`).
    pub connect_timeout: Duration,
    /// Time to wait for one reply (`HALLPASS_REDIS_RESPONSE_TIMEOUT_MS`); on a cluster also
    /// the bound of a whole request with its redirections and retries.
    pub response_timeout: Duration,
    /// Replicas that must acknowledge a security-critical write (`HALLPASS_REDIS_WAIT_REPLICAS`);
    /// 0 does not wait.
    pub wait_replicas: u32,
    /// How long such a write waits for them (`HALLPASS_REDIS_WAIT_TIMEOUT_MS`).
    pub wait_timeout: Duration,
    /// Tests only: send every command twice and keep the second reply, as redis-rs does when
    /// it resends a command that timed out after Redis executed it.
    #[doc(hidden)]
    pub send_twice: bool,
}

impl RedisOptions {
    /// One node at `url` with the default timeouts and no durability wait.
    pub fn node(url: &str, prefix: &str) -> Self {
        Self::new(RedisTarget::Node(url.to_string()), prefix)
    }

    /// `target` with the default timeouts and no durability wait.
    pub fn new(target: RedisTarget, prefix: &str) -> Self {
        Self {
            target,
            prefix: prefix.to_string(),
            ca_file: None,
            connect_timeout: Duration::from_millis(2000),
            response_timeout: Duration::from_millis(2000),
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(500),
            send_twice: false,
        }
    }

    /// Where Redis is, safe to log: `redis host:port` or `redis cluster host:port,host:port`.
    pub fn location(&self) -> String {
        match &self.target {
            RedisTarget::Node(url) => crate::config::redis_location(Some(url)),
            RedisTarget::Cluster(urls) => {
                let hosts: Vec<String> = urls
                    .iter()
                    .map(|u| {
                        crate::config::redis_location(Some(u))
                            .trim_start_matches("redis ")
                            .to_string()
                    })
                    .collect();
                format!("redis cluster {}", hosts.join(","))
            }
        }
    }

    fn certs(&self) -> Result<Option<TlsCertificates>, Problem> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            Problem::Fatal(format!(
                "HALLPASS_REDIS_CA_FILE {}: cannot read it: {e}",
                path.display()
            ))
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(Problem::Fatal(format!(
                "HALLPASS_REDIS_CA_FILE {}: holds no PEM certificate",
                path.display()
            )));
        }
        Ok(Some(TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        }))
    }

    /// Connects (the first command of the store calls this, and so does a rebuild). Single
    /// commands leave through a [`Coalesced`] queue.
    pub(crate) async fn connect(&self) -> Result<Conn, Problem> {
        let conn = self.connect_once().await?;
        let conn = if self.send_twice {
            Conn::Twice(Box::new(conn))
        } else {
            conn
        };
        Ok(Conn::Coalesced(Arc::new(Coalesced::new(conn))))
    }

    async fn connect_once(&self) -> Result<Conn, Problem> {
        let certs = self.certs()?;
        match &self.target {
            RedisTarget::Node(url) => {
                let client = match certs {
                    Some(c) => Client::build_with_tls(url.as_str(), c),
                    None => Client::open(url.as_str()),
                }
                .map_err(|e| describe(&e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.response_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| describe_connect(&e, url.starts_with("rediss://")))?;
                Ok(Conn::Node(manager))
            }
            RedisTarget::Cluster(urls) => {
                let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.response_timeout)
                    .overall_response_timeout(Some(self.response_timeout * 2))
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(400);
                if let Some(c) = certs {
                    builder = builder.certs(c);
                }
                let client = builder.build().map_err(|e| describe(&e))?;
                let conn = client.get_async_connection().await.map_err(|e| {
                    describe_connect(&e, urls.iter().any(|u| u.starts_with("rediss://")))
                })?;
                Ok(Conn::Cluster(conn))
            }
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("store", &self.location())
            .field("prefix", &self.prefix)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

/// A connection to one node or to a cluster; cheap to clone (both multiplex one socket per
/// node).
#[derive(Clone)]
pub enum Conn {
    /// One node, through a manager that reconnects by itself.
    Node(ConnectionManager),
    /// A cluster, routing each command to the master of its key's slot.
    Cluster(ClusterConnection),
    /// Tests only: every command sent twice (see [`RedisOptions::send_twice`]).
    Twice(Box<Conn>),
    /// Single commands queued and sent together ([`Coalesced`]).
    Coalesced(Arc<Coalesced>),
}

/// A single command waiting in a [`Coalesced`] queue, with where its answer goes.
type Queued = (Cmd, oneshot::Sender<RedisResult<Value>>);

/// Commands that requests issue at about the same time leave in one write.
///
/// redis-rs multiplexes every command over one socket through a driver task, which writes
/// what it has queued when it runs. On tokio's multi-threaded runtime a woken task runs next
/// (the "LIFO slot"), so the driver runs as soon as the first request sends, and every
/// command costs its own `write` (and, on loopback, the wake-up of Redis): with many
/// requests in flight, that was most of what a Redis round trip cost the server.
///
/// Here the first command of a batch spawns a flusher that yields once, which lets every
/// task already runnable reach its own command first; the flusher then hands them all to
/// redis-rs in one pass, so the driver writes them together. Each command is still sent as
/// itself (its own routing on a cluster, its own response timeout and resend), so what a
/// command means does not change; only when it leaves. The wait is one pass of the
/// scheduler's run queue, no timer. Pipelines (`WAIT` after a write) go straight through.
pub struct Coalesced {
    inner: Conn,
    queue: Mutex<Vec<Queued>>,
}

impl Coalesced {
    fn new(inner: Conn) -> Self {
        Self {
            inner,
            queue: Mutex::new(Vec::new()),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        // A panic while holding the lock cannot leave the Vec inconsistent: use it anyway.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `cmd`, starting a flusher when it is the first of its batch, and waits for its
    /// answer.
    async fn send(self: Arc<Self>, cmd: Cmd) -> RedisResult<Value> {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut queue = self.queue();
            queue.push((cmd, tx));
            queue.len() == 1
        };
        if first {
            let this = Arc::clone(&self);
            tokio::spawn(async move { this.flush().await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the command's batch was dropped (runtime shut down)",
            )))
        })
    }

    /// Sends every queued command (after one yield), each as itself, all in one poll pass.
    async fn flush(&self) {
        tokio::task::yield_now().await;
        let batch = std::mem::take(&mut *self.queue());
        let (cmds, senders): (Vec<Cmd>, Vec<_>) = batch.into_iter().unzip();
        let mut conns = vec![self.inner.clone(); cmds.len()];
        let mut pending: Vec<(RedisFuture<'_, Value>, Option<_>)> = conns
            .iter_mut()
            .zip(&cmds)
            .map(|(conn, cmd)| conn.req_packed_command(cmd))
            .zip(senders.into_iter().map(Some))
            .collect();
        std::future::poll_fn(|cx| {
            pending.retain_mut(|(answer, sender)| match answer.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    if let Some(tx) = sender.take() {
                        // The request may have gone (client disconnected): nothing to do.
                        let _ = tx.send(result);
                    }
                    false
                }
                Poll::Pending => true,
            });
            if pending.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Twice(c) => Box::pin(async move {
                c.req_packed_command(cmd).await?;
                c.req_packed_command(cmd).await
            }),
            Conn::Coalesced(c) => Box::pin(Arc::clone(c).send(cmd.clone())),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Twice(c) => Box::pin(async move {
                c.req_packed_commands(pipeline, offset, count).await?;
                c.req_packed_commands(pipeline, offset, count).await
            }),
            Conn::Coalesced(c) => Box::pin(async move {
                let mut inner = c.inner.clone();
                inner.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Twice(c) => c.get_db(),
            Conn::Coalesced(c) => c.inner.get_db(),
        }
    }
}

/// What went wrong reaching Redis, in words for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// It may heal by itself (a node down, a failover): requests get 503 meanwhile.
    Unreachable(String),
    /// It will not heal without a configuration change (password, DB index, TLS, CA).
    Fatal(String),
}

impl Problem {
    /// The sentence.
    pub fn message(&self) -> &str {
        match self {
            Problem::Unreachable(m) | Problem::Fatal(m) => m,
        }
    }
}

/// Names an error while connecting: over TLS, a failure that is neither a refusal nor a
/// timeout is the TLS layer (for example a server that does not speak TLS).
fn describe_connect(e: &RedisError, tls: bool) -> Problem {
    match describe(e) {
        Problem::Unreachable(_) if tls && !e.is_timeout() && !e.is_connection_refusal() => {
            Problem::Fatal(format!(
                "TLS to Redis failed: does the server speak TLS on that port, and did the CA in HALLPASS_REDIS_CA_FILE sign its certificate? ({e})"
            ))
        }
        other => other,
    }
}

/// Names a redis-rs error for an operator (never includes the URL, which may hold a password).
pub fn describe(e: &RedisError) -> Problem {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if e.kind() == ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH")
        || lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("invalid password")
    {
        return Problem::Fatal(format!(
            "Redis refused the credentials: wrong username or password in the Redis URL ({text})"
        ));
    }
    if lower.contains("db index is out of range") || lower.contains("invalid db index") {
        return Problem::Fatal(format!(
            "Redis has no such database: the DB index in the Redis URL (the path, such as /0) is out of range ({text})"
        ));
    }
    if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("unknownissuer")
        || lower.contains("invalid peer")
    {
        return Problem::Fatal(format!(
            "TLS to Redis failed: check rediss:// and HALLPASS_REDIS_CA_FILE (the CA that signed the server's certificate) ({text})"
        ));
    }
    if e.kind() == ErrorKind::InvalidClientConfig {
        return Problem::Fatal(format!("the Redis URL is not usable: {text}"));
    }
    if e.is_timeout() {
        return Problem::Unreachable(format!("Redis did not answer in time ({text})"));
    }
    if e.is_connection_refusal() || e.is_io_error() {
        return Problem::Unreachable(format!(
            "Redis node unreachable: nothing answers at that address yet ({text})"
        ));
    }
    Problem::Unreachable(format!("Redis is not usable yet: {text}"))
}
