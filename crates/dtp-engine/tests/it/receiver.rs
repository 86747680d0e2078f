//! An HTTP target for tests: a small HTTP/1.1 server on a loopback port that records every
//! request, answers as the test scripts it, and counts requests in flight and requests whose
//! connection was dropped before an answer (an aborted delivery).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

use crate::PATIENCE;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub raw_body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn body(&self) -> Value {
        serde_json::from_slice(&self.raw_body).unwrap()
    }
}

/// How to answer a request.
pub enum Reply {
    /// This status, these headers and this body.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Wait for a permit, then answer 200; or notice that the client went away.
    HoldUntil(Arc<Semaphore>),
    /// Never answer; notice when the client goes away.
    Hold,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self::Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn json(status: u16, body: &Value) -> Self {
        Self::Answer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::Answer {
            status,
            headers: vec![("content-type", "text/plain".into())],
            body: body.to_owned(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Self::Answer { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }
}

type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

struct State {
    script: Box<Script>,
    requests: Mutex<Vec<Received>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    aborted: AtomicUsize,
    changed: Notify,
}

pub struct Receiver {
    base_url: String,
    state: Arc<State>,
}

impl Receiver {
    /// Starts the receiver; `script(request, n)` answers the `n`th request to its path (0-based).
    pub async fn start(script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            aborted: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&serving)));
            }
        });
        Self { base_url, state }
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests whose client dropped the connection before the answer.
    pub fn aborted(&self) -> usize {
        self.state.aborted.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds of the receiver, failing the test after `PATIENCE`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Receiver) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let changed = self.state.changed.notified();
                if done(self) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "gave up waiting until {what}: {} requests, {} in flight, {} aborted",
            self.requests().len(),
            self.in_flight(),
            self.aborted()
        );
    }
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    let mut stream = BufReader::new(stream);
    while let Some(request) = read_request(&mut stream).await {
        let n = {
            let mut requests = state.requests.lock().unwrap();
            let earlier = requests.iter().filter(|r| r.path == request.path).count();
            requests.push(request.clone());
            earlier
        };
        let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        state.changed.notify_waiters();
        let answer = match (state.script)(&request, n) {
            Reply::Answer {
                status,
                headers,
                body,
            } => Some((status, headers, body)),
            Reply::HoldUntil(gate) => tokio::select! {
                permit = gate.acquire_owned() => {
                    permit.unwrap().forget();
                    Some((200, Vec::new(), String::new()))
                }
                () = client_gone(&mut stream) => None,
            },
            Reply::Hold => {
                client_gone(&mut stream).await;
                None
            }
        };
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        let Some((status, headers, body)) = answer else {
            state.aborted.fetch_add(1, Ordering::SeqCst);
            state.changed.notify_waiters();
            return;
        };
        let mut head = format!("HTTP/1.1 {status} Test\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let written = stream
            .get_mut()
            .write_all(format!("{head}{body}").as_bytes())
            .await;
        state.changed.notify_waiters();
        if written.is_err() {
            return;
        }
    }
}

/// Resolves when the client closes its side of the connection.
async fn client_gone(stream: &mut BufReader<TcpStream>) {
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).await.is_ok_and(|n| n > 0) {}
}

async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |l| l.parse().ok())?;
    let mut raw_body = vec![0; length];
    stream.read_exact(&mut raw_body).await.ok()?;
    Some(Received {
        method,
        path,
        headers,
        raw_body,
    })
}
