//! A fault-injecting HTTP proxy between slipway and the emulator, on loopback: every request is
//! passed to moto; the n-th *mutating* one (counted from the last `arm`) has its answer lost. The
//! write reaches moto and takes effect, then the client's connection is closed without an answer,
//! as when a network path drops a response, and optionally the client process is killed first,
//! as when the controller dies between a write and its answer.
//!
//! A call is mutating unless its operation is a read (`slipway_aws::calls::is_read_only`). The
//! operation comes from `X-Amz-Target` (JSON protocols), `Action=` (query protocols), or for S3's
//! REST protocol from the method (`PUT`, `POST`, `DELETE` write). Calls to one S3 bucket can be
//! left uncounted ([`FaultProxy::uncounted`]): the state bucket, whose writes (idempotent PUTs of
//! inventory entries) would otherwise double the cases without testing the resources.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use slipway_aws::calls::is_read_only;

/// What happens to the armed call.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Its answer is dropped; the client (the SDK) sees a closed connection and may retry.
    DropAnswer,
    /// The process `pid` is killed (SIGKILL) once the write has taken effect.
    Kill { pid: u32 },
}

#[derive(Default)]
struct State {
    /// Mutating calls seen since the last `arm`, as `METHOD operation`.
    writes: Vec<String>,
    armed: Option<(usize, Fault)>,
    /// The call whose answer was lost, once it happened.
    hit: Option<String>,
}

/// What the proxy shares between its threads.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// A path prefix (`/<bucket>` in S3's path style) whose calls are passed and never counted.
    uncounted: Mutex<Option<String>>,
    /// Every request passed, as `operation path body`, in the order they came.
    seen: Mutex<Vec<String>>,
}

pub struct FaultProxy {
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("http://").to_string();
        let shared = Arc::new(Shared::default());
        let threads = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, shared) = (upstream.clone(), threads.clone());
                std::thread::spawn(move || serve(client, &upstream, &shared));
            }
        });
        FaultProxy { endpoint: format!("http://127.0.0.1:{port}"), shared }
    }

    /// Leaves every call to S3 bucket `bucket` uncounted and unfaulted.
    pub fn uncounted(&self, bucket: &str) {
        *self.shared.uncounted.lock().unwrap() = Some(format!("/{bucket}"));
    }

    /// Loses the answer of the `n`-th mutating call from now (1-based); `None` passes every call.
    pub fn arm(&self, fault: Option<(usize, Fault)>) {
        let mut state = self.shared.state.lock().unwrap();
        *state = State { armed: fault, ..State::default() };
    }

    /// The mutating calls since the last `arm`.
    pub fn writes(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().writes.clone()
    }

    /// Every request passed so far, as `operation path body` (reads too).
    #[allow(dead_code)] // not every test binary that includes this module needs it
    pub fn seen(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The call whose answer was lost, if the armed one came.
    pub fn hit(&self) -> Option<String> {
        self.shared.state.lock().unwrap().hit.clone()
    }
}

/// One request per connection: every answer tells the client to close (it may be framed by the
/// close), so a connection is never reused after an answer.
fn serve(client: TcpStream, upstream: &str, shared: &Shared) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    if let Some(request) = read_request(&mut reader) {
        let uncounted = shared.uncounted.lock().unwrap().as_ref().is_some_and(|prefix| {
            request.path == *prefix || request.path.starts_with(&format!("{prefix}/")) || request.path.starts_with(&format!("{prefix}?"))
        });
        let operation = request.operation().unwrap_or_default();
        shared.seen.lock().unwrap().push(format!("{operation} {} {}", request.path, String::from_utf8_lossy(&request.body)));
        let fault = {
            let mut state = shared.state.lock().unwrap();
            match request.operation() {
                Some(op) if !is_read_only(&op) && !uncounted => {
                    state.writes.push(format!("{} {op}", request.method));
                    match state.armed {
                        Some((n, fault)) if n == state.writes.len() => {
                            state.hit = Some(op);
                            Some(fault)
                        }
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        let Some(answer) = forward(&request.raw, upstream) else { return };
        match fault {
            None => {
                let _ = client.write_all(&answer);
            }
            Some(Fault::DropAnswer) => {}
            Some(Fault::Kill { pid }) => {
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

struct Request {
    method: String,
    /// The request target: the path and query.
    path: String,
    target: Option<String>,
    body: Vec<u8>,
    /// The request as sent upstream (with `Connection: close`).
    raw: Vec<u8>,
}

impl Request {
    fn operation(&self) -> Option<String> {
        operation_of(&self.method, self.target.as_deref(), &self.body)
    }
}

/// The operation of a request: from `X-Amz-Target` (JSON protocols), `Action=` (query
/// protocols), or the method for S3's REST protocol (`Get` for reads, `S3PUT`… for writes).
pub fn operation_of(method: &str, target: Option<&str>, body: &[u8]) -> Option<String> {
    if let Some(target) = target {
        return target.rsplit('.').next().map(str::to_owned);
    }
    let body = String::from_utf8_lossy(body);
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return Some(action.to_owned());
    }
    match method {
        "GET" | "HEAD" => Some("Get".into()),
        "PUT" | "POST" | "DELETE" => Some(format!("S3{method}")),
        _ => None,
    }
}

/// One HTTP/1.1 request (Content-Length or chunked body); `None` at the end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = Vec::new();
    let (mut method, mut path, mut target, mut length, mut chunked) = (String::new(), String::new(), None, 0usize, false);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if method.is_empty() {
            let mut words = line.split(' ');
            method = words.next().unwrap_or("").to_string();
            path = words.next().unwrap_or("").to_string();
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("x-amz-target:") {
            target = Some(line["x-amz-target:".len()..].trim().to_string());
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    if chunked {
        body = read_chunked(reader)?;
        let text =
            String::from_utf8_lossy(&head).replace("Transfer-Encoding: chunked\r\n", "").replace("transfer-encoding: chunked\r\n", "");
        head = format!("{text}content-length: {}\r\n", body.len()).into_bytes();
    } else {
        reader.read_exact(&mut body).ok()?;
    }
    let mut raw = head;
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    raw.extend_from_slice(&body);
    Some(Request { method, path, target, body, raw })
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Sends the request to moto on a connection of its own and reads the answer to its end; the
/// answer is rewritten to say the connection closes after it.
fn forward(raw: &[u8], upstream: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).ok()?;
    stream.write_all(raw).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 2;
    let head = String::from_utf8_lossy(&answer[..split]);
    let kept: String = head.split_inclusive("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut out = kept.into_bytes();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(&answer[split..]);
    Some(out)
}
