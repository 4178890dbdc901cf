//! Counting the HTTP requests a remote backend makes, retries and multipart
//! parts included, so a run can report what it cost in round trips.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opendal::raw::{HttpBody, HttpClient, HttpFetch};
use opendal::Buffer;

/// Requests by what they do to storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// GET: object reads, range reads and listings.
    pub get: u64,
    /// PUT and POST: uploads, multipart parts, batch deletes.
    pub put: u64,
    /// HEAD: existence and size checks.
    pub head: u64,
    pub delete: u64,
    /// Anything else (PROPFIND, MKCOL, ... on WebDAV).
    pub other: u64,
    /// Requests answered with a 5xx status or a 429 (retried by the backend).
    pub failed: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.get + self.put + self.head + self.delete + self.other
    }

    /// For --json summaries.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "total": self.total(),
            "get": self.get,
            "put": self.put,
            "head": self.head,
            "delete": self.delete,
            "other": self.other,
            "failed": self.failed,
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    get: AtomicU64,
    put: AtomicU64,
    head: AtomicU64,
    delete: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> RequestCounts {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestCounts {
            get: n(&self.get),
            put: n(&self.put),
            head: n(&self.head),
            delete: n(&self.delete),
            other: n(&self.other),
            failed: n(&self.failed),
        }
    }

    fn count(&self, method: &http::Method) {
        let counter = match *method {
            http::Method::GET => &self.get,
            http::Method::PUT | http::Method::POST => &self.put,
            http::Method::HEAD => &self.head,
            http::Method::DELETE => &self.delete,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The default HTTP client with a counter in front.
pub(super) struct CountingClient {
    inner: HttpClient,
    counters: Arc<Counters>,
}

impl CountingClient {
    pub(super) fn new(counters: Arc<Counters>) -> Self {
        CountingClient {
            inner: HttpClient::default(),
            counters,
        }
    }
}

impl HttpFetch for CountingClient {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        self.counters.count(req.method());
        let resp = self.inner.fetch(req).await;
        if let Ok(r) = &resp {
            let status = r.status();
            if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        resp
    }
}
