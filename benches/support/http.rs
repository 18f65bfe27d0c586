//! The load generators' HTTP/1.1 response framing: requests are pre-serialised bytes and
//! responses are read by `Content-Length`, so the generator costs little next to the server.

/// When `buf` holds a whole response (head and `Content-Length` body): its length, and
/// whether it was a 200. `None` while more bytes are needed.
pub fn complete_response(buf: &[u8]) -> Option<(usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let total = end + 4 + len;
    (buf.len() >= total).then(|| (total, head.starts_with("HTTP/1.1 200")))
}
