//! `vault serve`: a small read-only HTTP server for uptime checks,
//! Prometheus and people. GET only; it serves the status (no secrets, no
//! file contents) and nothing else. One request at a time is plenty for a
//! status endpoint, and keeps a slow client from piling up work.

mod http;
pub mod page;

use std::net::TcpListener;

use crate::error::{Error, Result};
use crate::ops::run::{metrics, Status};

pub use self::http::Response;

/// Route one GET request. `status` computes the current status.
pub fn route(path: &str, status: &dyn Fn() -> Result<Status>) -> Response {
    let path = path.split('?').next().unwrap_or_default();
    let known = matches!(path, "/" | "/health" | "/metrics" | "/api/status");
    if !known {
        return Response::text(404, "not found\n");
    }
    let st = match status() {
        Ok(s) => s,
        // The repository cannot be read: unhealthy, and say why.
        Err(e) => return Response::text(503, &format!("status unavailable: {e}\n")),
    };
    match path {
        "/health" => {
            if st.healthy {
                Response::text(200, "ok\n")
            } else {
                Response::text(503, &format!("{}\n", st.breaches.join("\n")))
            }
        }
        "/metrics" => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(&st),
        ),
        "/api/status" => match serde_json::to_string_pretty(&st) {
            Ok(body) => Response::new(200, "application/json", body),
            Err(e) => Response::text(500, &format!("{e}\n")),
        },
        _ => Response::new(200, "text/html; charset=utf-8", page::render(&st)),
    }
}

/// Serve until the process is stopped. `ready` is called once the socket
/// listens, with its address (port 0 picks a free one).
pub fn serve(
    listen: &str,
    status: &dyn Fn() -> Result<Status>,
    ready: &mut dyn FnMut(std::net::SocketAddr),
) -> Result<()> {
    let listener =
        TcpListener::bind(listen).map_err(|e| Error::io(format!("listening on {listen}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(format!("listening on {listen}"), e))?;
    ready(addr);
    // A client that fails to connect or mid-request is its own problem.
    for stream in listener.incoming().flatten() {
        let _ = http::handle(stream, &|path| route(path, status));
    }
    Ok(())
}
