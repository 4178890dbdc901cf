//! A throwaway redis-server on a unix socket in a temp dir, and a small
//! RESP client to write to it and read it back. Stopped on drop.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Redis {
    dir: TempDir,
    pub socket: PathBuf,
    pub password: String,
    child: Child,
}

/// The programs the Redis tests need, or None after saying why they skip.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let found = super::services::require("redis tests", &["redis-server", "redis-cli"])?;
    Some((found[0].clone(), found[1].clone()))
}

impl Redis {
    /// A server with a password and no data.
    pub fn start(server: &Path, password: &str) -> Redis {
        Self::start_with(server, password, None)
    }

    /// A server that loads `rdb` at startup.
    pub fn start_from_rdb(server: &Path, password: &str, rdb: &Path) -> Redis {
        Self::start_with(server, password, Some(rdb))
    }

    fn start_with(server: &Path, password: &str, rdb: Option<&Path>) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("vault-redis-")
            .tempdir()
            .unwrap();
        if let Some(rdb) = rdb {
            std::fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
        }
        let socket = dir.path().join("redis.sock");
        let log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
        let child = Command::new(server)
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--dbfilename",
                "dump.rdb",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            // The server waits this long for more replicas before it
            // starts a transfer; nothing else is coming.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--requirepass", password])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        let mut r = Redis {
            dir,
            socket,
            password: password.to_string(),
            child,
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited ({status}): {}", self.log());
            }
            if let Ok(mut c) = RespConn::connect(&self.socket, &self.password) {
                // LOADING while an RDB is read: wait for it.
                if matches!(c.cmd(&["PING"]), Reply::Simple(ref s) if s == "PONG") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub fn connect(&self) -> RespConn {
        RespConn::connect(&self.socket, &self.password).expect("connect to redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

pub struct RespConn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl RespConn {
    pub fn connect(socket: &Path, password: &str) -> std::io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        let mut c = RespConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        match c.cmd(&["AUTH", password]) {
            Reply::Simple(_) => Ok(c),
            other => Err(std::io::Error::other(format!("AUTH: {other:?}"))),
        }
    }

    /// Queue one command without reading its reply (pipelining).
    pub fn send(&mut self, args: &[&str]) {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf).expect("write to redis");
    }

    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.read()
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("read from redis");
        l.trim_end_matches("\r\n").to_string()
    }

    pub fn read(&mut self) -> Reply {
        let l = self.line();
        let (kind, rest) = l.split_at(1);
        match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut data = vec![0u8; n as usize + 2];
                std::io::Read::read_exact(&mut self.reader, &mut data).unwrap();
                data.truncate(n as usize);
                Reply::Bulk(Some(data))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                Reply::Array((0..n.max(0)).map(|_| self.read()).collect())
            }
            _ => panic!("unexpected reply from redis: {l:?}"),
        }
    }

    /// Every key, by SCAN.
    pub fn keys(&mut self) -> Vec<String> {
        let mut cursor = "0".to_string();
        let mut keys = Vec::new();
        loop {
            let Reply::Array(parts) = self.cmd(&["SCAN", &cursor, "COUNT", "1000"]) else {
                panic!("SCAN did not return an array");
            };
            let [Reply::Bulk(Some(next)), Reply::Array(batch)] = parts.as_slice() else {
                panic!("unexpected SCAN reply: {parts:?}");
            };
            for k in batch {
                if let Reply::Bulk(Some(k)) = k {
                    keys.push(String::from_utf8(k.clone()).unwrap());
                }
            }
            cursor = String::from_utf8(next.clone()).unwrap();
            if cursor == "0" {
                return keys;
            }
        }
    }
}
