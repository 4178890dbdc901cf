//! A real S3-compatible server for tests (moto's standalone server on a
//! free port, killed when dropped), a fault-injecting HTTP proxy to put in
//! front of it, and a scratch repository driven through the real binary on
//! a bucket of that server.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{assert_success, Vault};

const MOTO: &str = "moto_server";

/// The S3 server binary, or `None` (with a loud message) when it is not
/// installed; with `VAULT_REQUIRE_SERVICES=1` a missing server fails the
/// test instead.
pub fn moto_binary() -> Option<PathBuf> {
    super::services::require("S3 tests (pip install 'moto[server]')", &[MOTO])
        .and_then(|mut found| found.pop())
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running moto server; killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Start a server, or `None` when the binary is missing (see
    /// `moto_binary`).
    pub fn start() -> Option<S3Server> {
        let bin = moto_binary()?;
        let port = super::services::free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = S3Server { child, port };
        wait_for_port(port, MOTO);
        Some(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let answer = raw_request(self.port, "PUT", &format!("/{name}"));
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "create bucket {name}: {answer}"
        );
    }

    /// Object keys in a bucket below a prefix (for checks on what is stored).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let answer = raw_request(
            self.port,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}&max-keys=100000"),
        );
        answer
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request without a body; the whole answer as text.
fn raw_request(port: u16, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the S3 server");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("send request");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// What the proxy does to requests; change it while it runs.
#[derive(Default)]
pub struct Faults {
    /// Answer every Nth request with a 503 SlowDown (0: never).
    pub fail_every: AtomicU64,
    /// Hold every request this long before forwarding it.
    pub delay_ms: AtomicU64,
    /// Drop every connection unanswered, as a dead server would.
    pub down: AtomicBool,
    /// Go down once this many PUT requests went through (0: never).
    pub down_after_puts: AtomicU64,
    /// Refuse writes and deletes with 403 AccessDenied.
    pub deny_writes: AtomicBool,
    /// Requests seen, and PUT requests forwarded.
    pub requests: AtomicU64,
    pub puts: AtomicU64,
    /// 503s injected.
    pub injected: AtomicU64,
    /// The request line of every request seen (`GET /bucket/key HTTP/1.1`).
    pub log: std::sync::Mutex<Vec<String>>,
}

/// A small HTTP proxy in front of a real server that injects failures;
/// the server behind it is never faked. Stops accepting when dropped.
pub struct FaultProxy {
    pub port: u16,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        {
            let faults = faults.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let faults = faults.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, upstream, &faults);
                    });
                }
            });
        }
        FaultProxy { port, faults, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    head: Vec<String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let method = line.split(' ').next().unwrap_or_default().to_string();
    let mut head = vec![line.trim_end().to_string()];
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") {
            return Err(io::Error::other(
                "chunked requests are not supported by the test proxy",
            ));
        }
        if !lower.starts_with("connection:") {
            head.push(h);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, head, body }))
}

fn answer(client: &mut TcpStream, status: &str, code: &str) -> io::Result<()> {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>");
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One request per connection: read it, maybe fail it, else forward it
/// with `Connection: close` and relay the answer until the server closes.
fn serve(client: TcpStream, upstream: SocketAddr, faults: &Faults) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let Some(req) = read_request(&mut reader)? else {
        return Ok(());
    };
    let n = faults.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Ok(mut log) = faults.log.lock() {
        log.push(req.head[0].clone());
    }
    if faults.down.load(Ordering::SeqCst) {
        return client.shutdown(Shutdown::Both);
    }
    let writes = matches!(req.method.as_str(), "PUT" | "POST" | "DELETE");
    if writes && faults.deny_writes.load(Ordering::SeqCst) {
        return answer(&mut client, "403 Forbidden", "AccessDenied");
    }
    let every = faults.fail_every.load(Ordering::SeqCst);
    if every > 0 && n.is_multiple_of(every) {
        faults.injected.fetch_add(1, Ordering::SeqCst);
        return answer(&mut client, "503 Slow Down", "SlowDown");
    }
    let delay = faults.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    if req.method == "PUT" {
        let puts = faults.puts.fetch_add(1, Ordering::SeqCst) + 1;
        let limit = faults.down_after_puts.load(Ordering::SeqCst);
        if limit > 0 && puts >= limit {
            faults.down.store(true, Ordering::SeqCst);
        }
    }
    let mut server = TcpStream::connect(upstream)?;
    let mut head = req.head.join("\r\n");
    head.push_str("\r\nConnection: close\r\n\r\n");
    server.write_all(head.as_bytes())?;
    server.write_all(&req.body)?;
    io::copy(&mut server, &mut client)?;
    client.shutdown(Shutdown::Both)
}

/// A scratch repository in a bucket of `endpoint`, driven through the
/// binary with the AWS variables set.
pub struct S3Repo {
    pub vault: Vault,
    pub url: String,
}

impl S3Repo {
    /// A repository location in a new bucket (not initialised). Requests
    /// go to `endpoint` (the server itself, or a proxy in front of it).
    pub fn new(server: &S3Server, bucket: &str, endpoint: &str) -> S3Repo {
        server.create_bucket(bucket);
        S3Repo::without_bucket(bucket, endpoint)
    }

    /// A repository location whose bucket is not created (nor checked).
    pub fn without_bucket(bucket: &str, endpoint: &str) -> S3Repo {
        let mut vault = Vault::empty();
        let url = format!("s3://{bucket}/repo");
        vault.repo = PathBuf::from(&url);
        vault.env = s3_vars(endpoint);
        S3Repo { vault, url }
    }

    /// An initialised repository (fast KDF), like `Vault::init`.
    pub fn init(server: &S3Server, bucket: &str, endpoint: &str) -> S3Repo {
        let r = S3Repo::new(server, bucket, endpoint);
        r.init_here(&[]);
        r
    }

    /// `dump SNAP NAME` to a file in the scratch area; returns its path.
    pub fn dump_to_file(&self, snap: &str, name: &str) -> PathBuf {
        let target = self.vault.path().join(format!("dump-{name}"));
        let file = std::fs::File::create(&target).expect("create dump file");
        let mut c = self.cmd(&["dump", snap, name]);
        let out = c
            .stdout(file)
            .stderr(Stdio::piped())
            .output()
            .expect("run dump");
        assert_success(&out, &format!("dump {snap} {name} from {}", self.url));
        target
    }
}

/// An S3 endpoint and the credentials moto accepts, for a command's
/// environment.
pub fn s3_vars(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The repository's commands run through the scratch area's `Vault`, whose
/// environment points them at the S3 endpoint.
impl std::ops::Deref for S3Repo {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        &self.vault
    }
}
