//! Connections an attacker holds: a request head trickling in on a kept-alive connection is
//! cut off (the HTTP server's own deadline covers only a connection's first request), and
//! beyond the connection cap a new client is answered 503 at once instead of hanging.

use std::time::{Duration, Instant};

use dtp_engine::testing::TestEngine;
use service_http::connections::IDLE_LIMIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{stepped, PATIENCE, POLL_EVERY};

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads one response (headers and a `content-length` body) from `stream`.
async fn response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_completes_is_cut_off_on_a_kept_alive_connection() {
    let dtp = TestEngine::spawn_with(stepped).await;
    let mut stream = TcpStream::connect(("127.0.0.1", dtp.port())).await.unwrap();
    stream.write_all(HEALTH).await.unwrap();
    assert!(response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // One byte of the next request, then nothing: the connection must not stay open.
    stream.write_all(b"G").await.unwrap();
    let began = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        IDLE_LIMIT + Duration::from_secs(10),
        stream.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_ok(), "still open after {:?}", began.elapsed());
    assert!(
        began.elapsed() <= IDLE_LIMIT + Duration::from_secs(2),
        "closed after {:?}",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_a_client_is_answered_503_at_once() {
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.max_connections = 2;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", dtp.port())).await.unwrap();
        stream.write_all(HEALTH).await.unwrap();
        assert!(response(&mut stream).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut extra = TcpStream::connect(("127.0.0.1", dtp.port())).await.unwrap();
    extra.write_all(HEALTH).await.unwrap();
    let busy = response(&mut extra).await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(
        busy.contains(r#""code":"SERVER_BUSY""#) && busy.contains("retry-after: 1"),
        "{busy}"
    );
    assert!(busy.contains("connection: close"), "{busy}");

    // Once the held connections close, new clients are served again.
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = TcpStream::connect(("127.0.0.1", dtp.port())).await.unwrap();
        stream.write_all(HEALTH).await.unwrap();
        if response(&mut stream).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A request that submits a task with a payload of about `bytes`, as raw bytes.
fn large_submission(bytes: usize) -> Vec<u8> {
    let body = format!(
        r#"{{"type": "demo", "payload": {{"pad": "{}"}}}}"#,
        "x".repeat(bytes)
    );
    let mut request = format!(
        "POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_wait_for_their_share_of_the_memory_budget_and_small_ones_do_not() {
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.body_budget_bytes = 200 * 1024;
    })
    .await;
    let connect = || TcpStream::connect(("127.0.0.1", dtp.port()));

    // The first large body arrives slowly and holds the whole budget while it does.
    let first = large_submission(150 * 1024);
    let (first_head, first_rest) = first.split_at(first.len() / 2);
    let mut slow = connect().await.unwrap();
    slow.write_all(first_head).await.unwrap();

    // A second large body waits, however quickly it is sent...
    let mut waiting = connect().await.unwrap();
    waiting.write_all(&large_submission(150 * 1024)).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.peek(&mut byte))
            .await
            .is_err(),
        "a second large body was read while the budget was held"
    );

    // ...while a small request passes at once.
    let mut small = connect().await.unwrap();
    small
        .write_all(b"POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"type\": \"demo\"}")
        .await
        .unwrap();
    assert!(response(&mut small).await.starts_with("HTTP/1.1 201"));

    // Once the first body is in and answered, the second is read and answered too.
    slow.write_all(first_rest).await.unwrap();
    assert!(response(&mut slow).await.starts_with("HTTP/1.1 201"));
    assert!(response(&mut waiting).await.starts_with("HTTP/1.1 201"));
}
