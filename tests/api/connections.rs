//! Slow and idle connections (issue 8, item 2), over real TCP: the header-read, body-read and
//! idle timeouts close what an attacker holds open, and the connection cap makes extra
//! connections wait instead of exhausting file descriptors.
//!
//! The servers here run with timeouts of one second, and the tests wait for them to fire:
//! every assertion is about what the server did (closed, answered 408, answered 200), never
//! about how long it took. [`SAFETY`] only turns a server that never closes into a failure
//! instead of a hang.

use std::time::Duration;

use hallpass::config::Config;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Backend, TestApp, spawn_app_on};

/// How long a test waits for the server before failing (a net, not a measurement).
const SAFETY: Duration = Duration::from_secs(20);

/// The pause between the bytes a slow client drips: part of the attack, not a synchronisation.
const DRIP: Duration = Duration::from_millis(100);

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

async fn app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(Backend::Memory, tweak).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

/// Everything the server sends until it closes the connection (a reset counts as closed).
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(SAFETY, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("reading failed: {e}"),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    out
}

/// One HTTP/1.1 response with a `Content-Length` body: its status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let read = tokio::time::timeout(SAFETY, async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    let status = head[9..12].parse().unwrap();
                    let body = String::from_utf8_lossy(&data[end + 4..end + 4 + len]).into();
                    return (status, body);
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed before a whole response");
            data.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    read.expect("a response arrives")
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&app).await;

    let sent = read_until_closed(&mut stream).await;

    assert!(sent.is_empty(), "no response to no request");
}

#[tokio::test]
async fn a_connection_dripping_header_lines_is_closed_after_the_header_timeout() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let (mut reader, mut writer) = connect(&app).await.into_split();
    let dripper = tokio::spawn(async move {
        if writer
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .is_err()
        {
            return;
        }
        for i in 0.. {
            let line = format!("X-Drip-{i}: a\r\n");
            if writer.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(DRIP).await;
        }
    });

    let sent = read_until_closed(&mut reader).await;

    assert!(
        !sent.starts_with(b"HTTP/1.1 200"),
        "the dripped request is not served"
    );
    dripper.abort();
}

#[tokio::test]
async fn a_request_dripping_its_body_gets_408_with_the_rfc_error_shape() {
    let app = app_with(|c| c.body_read_timeout = Duration::from_secs(1)).await;
    let (mut reader, mut writer) = connect(&app).await.into_split();
    let dripper = tokio::spawn(async move {
        let head = "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
                    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n";
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(DRIP).await;
        }
    });

    let sent = String::from_utf8_lossy(&read_until_closed(&mut reader).await).into_owned();

    assert!(sent.starts_with("HTTP/1.1 408"), "got {sent:?}");
    assert!(
        sent.contains(r#""error":"invalid_request""#),
        "got {sent:?}"
    );
    dripper.abort();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(60);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(GET_HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);

    let sent = read_until_closed(&mut stream).await;

    assert!(sent.is_empty(), "nothing more is sent before the close");
}

#[tokio::test]
async fn a_keep_alive_connection_serves_its_next_request_within_the_idle_timeout() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(60);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&app).await;

    for _ in 0..3 {
        stream.write_all(GET_HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await.0, 200);
    }
}

/// Five connections hold the five slots; a sixth is connected (the kernel queues it) but not
/// served while the server keeps answering the five, and is served once one of them closes.
#[tokio::test]
async fn beyond_the_connection_cap_a_connection_waits_until_a_slot_frees() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(60);
        c.idle_timeout = Duration::from_secs(60);
        c.max_connections = Some(5);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = connect(&app).await;
        s.write_all(GET_HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
        held.push(s);
    }

    let mut sixth = connect(&app).await;
    sixth.write_all(GET_HEALTHZ).await.unwrap();
    for _ in 0..3 {
        held[1].write_all(GET_HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut held[1]).await.0, 200);
    }
    let mut byte = [0u8; 1];
    let waiting = sixth.try_read(&mut byte);
    assert!(
        matches!(&waiting, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the sixth connection is not served while the cap is reached: {waiting:?}"
    );

    drop(held.remove(0));

    assert_eq!(read_response(&mut sixth).await.0, 200);
}

#[tokio::test]
async fn healthz_answers_while_many_slow_sockets_are_open() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(60);
        c.body_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut slow = Vec::new();
    for i in 0..150 {
        let mut s = connect(&app).await;
        let part: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n",
            _ => b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\na",
        };
        s.write_all(part).await.unwrap();
        slow.push(s);
    }

    for _ in 0..10 {
        let resp = app
            .http
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    drop(slow);
}

/// With the cap full of clients that never send a request, the header timeout frees the
/// slots and a real request is still served.
#[tokio::test]
async fn healthz_is_served_when_silent_sockets_fill_the_connection_cap() {
    let app = app_with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.max_connections = Some(10);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(connect(&app).await);
    }

    let resp = tokio::time::timeout(
        SAFETY,
        app.http.get(format!("{}/healthz", app.address)).send(),
    )
    .await
    .expect("served once the silent sockets are closed")
    .unwrap();

    assert_eq!(resp.status(), 200);
    drop(silent);
}
