#!/usr/bin/env python3
"""A flood of bad requests against a release `hallpass serve`, with its RSS watched.

Starts the binary (default target/release/hallpass; build it with `cargo build --release`)
on the memory store (or on Redis at FLOOD_REDIS_URL, under a prefix of its own whose keys it
deletes at the end) and port 0, then 16 threads on keep-alive connections send a random mix
of requests a client can get wrong for FLOOD_SECS (40) seconds: an unknown client's Basic
credentials (throttled after the first failures), code exchanges of made-up codes (each
reads the code's record beside the client's), a malformed form and Basic header,
truncated JSON, a 3,000-byte client_id, introspection without a content type, a sign-in
without CSRF, and 2% of the time a 50 MB Content-Length with 1 MB sent. Prints the server's
VmRSS every 5 s and, at the end, how many responses of each status came back (a 5xx is a
bug) and the client-side errors (a BrokenPipe is the server answering 413 and closing while
an oversized body is still being sent).

Usage: [FLOOD_REDIS_URL=redis://127.0.0.1:6379] benches/bad_request_flood.py [path/to/hallpass]
"""
import base64
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

def code_exchange(basic, code):
    body = b"grant_type=authorization_code&redirect_uri=https%3A%2F%2Fa.example%2Fcb&code=" + code
    auth = b"Authorization: Basic " + base64.b64encode(basic) + b"\r\n" if basic else b""
    return (
        b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n" + auth
        + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )


BAD = [
    code_exchange(b"nosuch:secret", b"A" * 43),
    code_exchange(None, b"%FF%FE" + b"B" * 250),
    code_exchange(b"nosuch:secret", b"C" * 3000),
    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
    + base64.b64encode(b"nosuch:secret")
    + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n"
    b"grant_type=client_credentials",
    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
    b"\r\nContent-Length: 10\r\n\r\n%%%%%%%%%%",
    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!!\r\nContent-Length: 0\r\n\r\n",
    b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9"
    b"\r\n\r\n{\"a\":[[[[",
    b"GET /oauth2/authorize?client_id=" + b"A" * 3000 + b"&response_type=code HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /oauth2/introspect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\ntoken",
    b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
    b"\r\nContent-Length: 30\r\n\r\nusername=a&password=b&csrf=zzz",
]
BIG = (
    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
    b"\r\nContent-Length: 50000000\r\n\r\n" + b"a" * 1_000_000
)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def worker(port, stop, counts, lock):
    while time.time() < stop:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                for _ in range(20):
                    req = BIG if random.random() < 0.02 else random.choice(BAD)
                    s.sendall(req)
                    data = s.recv(65536)
                    if not data:
                        break
                    status = data[9:12].decode(errors="replace")
                    with lock:
                        counts[status] = counts.get(status, 0) + 1
                    if req is BIG:
                        break
        except OSError as e:
            with lock:
                counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/hallpass"
    secs = float(os.environ.get("FLOOD_SECS", "40"))
    keys = tempfile.mkdtemp(prefix="hallpass-flood-keys-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(HALLPASS_BIND="127.0.0.1:0", HALLPASS_KEYS_DIR=keys, RUST_LOG="error")
    redis_url = os.environ.get("FLOOD_REDIS_URL")
    prefix = f"hallpass-flood:{os.getpid()}-{random.getrandbits(32):08x}:"
    if redis_url:
        env.update(REDIS_URL=redis_url, HALLPASS_REDIS_PREFIX=prefix)
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stdout:
            if line.startswith("listening on "):
                port = int(line.rsplit(":", 1)[1])
                break
        assert port, "the server did not say where it listens"
        print(f"listening: VmRSS {rss_kib(server.pid)} KiB")
        counts, lock = {}, threading.Lock()
        stop = time.time() + secs
        threads = [
            threading.Thread(target=worker, args=(port, stop, counts, lock)) for _ in range(16)
        ]
        for t in threads:
            t.start()
        start = time.time()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            print(f"{time.time() - start:4.0f} s: VmRSS {rss_kib(server.pid)} KiB")
        for t in threads:
            t.join()
        print(f"after the flood: VmRSS {rss_kib(server.pid)} KiB")
        print("responses and client-side errors:", dict(sorted(counts.items())))
        fives = sum(n for k, n in counts.items() if k.startswith("5"))
        print(f"5xx: {fives}")
        sys.exit(1 if fives else 0)
    finally:
        server.kill()
        server.wait()
        if redis_url:
            keys = subprocess.run(
                ["redis-cli", "-u", redis_url, "--scan", "--pattern", prefix + "*"],
                capture_output=True, text=True,
            ).stdout.split()
            for i in range(0, len(keys), 500):
                subprocess.run(["redis-cli", "-u", redis_url, "DEL", *keys[i:i + 500]],
                               capture_output=True)
            print(f"deleted the run's {len(keys)} Redis keys")


if __name__ == "__main__":
    main()
