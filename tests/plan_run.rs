//! `vault run`, `status`, `serve` and `schedule` driven by a plan file,
//! against real PostgreSQL, Redis, an S3 server (moto), a webhook receiver
//! on a local socket, systemd-analyze and a headless Chromium.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::postgres::Postgres;
use common::redis::{self, Redis};
use common::s3::{S3Repo, S3Server};
use common::{code, parse_json, stderr, stdout, Vault, BIN};
use serde_json::Value;

/// Exit code of `status` when a target is breached (README).
const TARGET_BREACHED: i32 = 13;

/// Records every JSON body POSTed to it.
struct Webhook {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(body) = read_post(&stream) {
                    sink.lock().unwrap().push(body);
                }
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Webhook { url, received }
    }

    /// (event, source, kind) of every notice so far.
    fn notices(&self) -> Vec<(String, String, String)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["event"].as_str().unwrap_or_default().to_string(),
                    v["source"].as_str().unwrap_or_default().to_string(),
                    v["kind"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn count(&self, event: &str, source: &str, kind: &str) -> usize {
        self.notices()
            .iter()
            .filter(|(e, s, k)| e == event && s == source && k == kind)
            .count()
    }
}

fn read_post(stream: &TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /hook "), "webhook got: {line}");
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// GET `path` from a server at `addr`: (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to vault serve");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `vault serve` on a free loopback port; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(env: &[(String, String)], plan: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(plan)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vault serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| panic!("serve printed: {line}"))
            .to_string();
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every vault call of a test gets.
fn base_env(v: &Vault) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), v.home.display().to_string()),
        ("VAULT_CACHE_DIR".into(), v.cache.display().to_string()),
    ]
}

fn vault(env: &[(String, String)], args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    for var in [
        "VAULT_REPOSITORY",
        "VAULT_PASSWORD",
        "VAULT_PASSWORD_FILE",
        "VAULT_CONFIG",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vault")
}

fn run_json(env: &[(String, String)], plan: &Path, sources: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json", "run", "--config", plan.to_str().unwrap()];
    args.extend_from_slice(sources);
    let out = vault(env, &args);
    assert!(
        code(&out) == 0 || code(&out) == 1,
        "vault run: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    (code(&out), parse_json(&out))
}

fn status_json(env: &[(String, String)], plan: &Path) -> (i32, Value) {
    let out = vault(
        env,
        &["--json", "status", "--config", plan.to_str().unwrap()],
    );
    (code(&out), parse_json(&out))
}

fn source<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {status}"))
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {run}"))
}

fn write_password(v: &Vault) -> PathBuf {
    let file = v.path().join("password");
    std::fs::write(&file, &v.password).unwrap();
    file
}

#[test]
fn plan_run_records_failures_copies_alerts_once_and_recovers() {
    let Some(pg) = Postgres::start() else { return };
    let Some((redis_server, _)) = redis::binaries() else {
        return;
    };
    let Some(s3) = S3Server::start() else { return };
    let cache = Redis::start(&redis_server, "redis-secret");
    cache.connect().cmd(&["SET", "greeting", "hello"]);
    let offsite = S3Repo::init(&s3, "offsite", &s3.endpoint());
    let v = Vault::init();
    let password = write_password(&v);
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS payload FROM generate_series(1, 20000) g",
    );
    let files = v.dir("files");
    std::fs::write(files.join("a.txt"), "some file content\n".repeat(100)).unwrap();
    let flag = v.path().join("flaky-fixed");
    let hook = Webhook::start();
    let metrics = v.path().join("vault.prom");
    let plan = v.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
state_dir = "{state}"

[repository]
location = "{repo}"
password_file = "{password}"

[[copy]]
name = "offsite"
location = "{offsite}"
password_file = "{password}"

[[source]]
name = "db"
kind = "pg"
database = "app"
schedule = "1h"
rpo = "1h"
rto = "10m"
keep = {{ last = 10 }}
copy_to = ["offsite"]
drill = {{ every = "7d", asserts = ["SELECT count(*) = 20000 FROM big"] }}

[[source]]
name = "files"
kind = "files"
paths = ["{files}"]
schedule = "1h"
rpo = "1h"
copy_to = []

[[source]]
name = "cache"
kind = "redis"
socket = "{socket}"
schedule = "1h"
rpo = "1h"
copy_to = []

[[source]]
name = "flaky"
kind = "cmd"
command = ["sh", "-c", "test -e {flag} && echo fixed"]
schedule = "1h"
rpo = "1h"
copy_to = []

[alerts]
webhook = "{hook}"

[metrics]
textfile = "{metrics}"
"#,
            state = v.path().join("state").display(),
            repo = v.repo.display(),
            password = password.display(),
            offsite = offsite.url,
            files = files.display(),
            socket = cache.socket.display(),
            flag = flag.display(),
            hook = hook.url,
            metrics = metrics.display(),
        ),
    )
    .unwrap();
    let mut env = base_env(&v);
    env.extend(pg.env().into_iter().map(|(k, v)| (k.to_string(), v)));
    env.push(("REDISCLI_AUTH".into(), cache.password.clone()));
    env.extend(offsite.vault.env.iter().cloned());

    // First run: everything is due; the failing source fails alone.
    let (exit, first) = run_json(&env, &plan, &[]);
    assert_eq!(exit, 1, "a failed task makes the run fail: {first}");
    for name in ["db", "files", "cache"] {
        assert_eq!(task(&first, name)["passed"], true, "{first}");
    }
    let flaky = task(&first, "flaky");
    assert_eq!(flaky["passed"], false);
    assert!(
        flaky["message"].as_str().unwrap().starts_with("snapshot:"),
        "{flaky}"
    );
    let steps: Vec<&str> = task(&first, "db")["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["snapshot", "verify", "copy offsite", "forget", "drill"]
    );
    assert_eq!(
        hook.count("alert", "flaky", "failure"),
        1,
        "{:?}",
        hook.notices()
    );

    // Nothing is due a moment later: a timer every minute does nothing.
    let (exit, idle) = run_json(&env, &plan, &[]);
    assert_eq!(exit, 0, "{idle}");
    assert_eq!(idle["tasks"].as_array().unwrap().len(), 0, "{idle}");

    // Second run of every source; the failure goes on, without a new alert.
    let (exit, second) = run_json(&env, &plan, &["db", "files", "cache", "flaky"]);
    assert_eq!(exit, 1, "{second}");
    assert_eq!(
        hook.count("alert", "flaky", "failure"),
        1,
        "{:?}",
        hook.notices()
    );

    let (exit, status) = status_json(&env, &plan);
    assert_eq!(exit, TARGET_BREACHED, "a failing source breaches: {status}");
    let flaky = source(&status, "flaky");
    assert_eq!(flaky["failing"], true);
    assert!(flaky["last_failure"]["message"]
        .as_str()
        .unwrap()
        .contains("snapshot"));
    assert_eq!(flaky["success"]["rate_7d"], 0.0);
    assert_eq!(flaky["success"]["runs_7d"], 2);
    for name in ["db", "files", "cache"] {
        let s = source(&status, name);
        assert_eq!(s["healthy"], true, "{s}");
        assert_eq!(s["success"]["rate_7d"], 1.0, "{s}");
        assert_eq!(s["success"]["runs_30d"], 2, "{s}");
        assert!(s["rpo"]["age_seconds"].as_u64().unwrap() < 3600, "{s}");
        assert_eq!(s["rpo"]["breached"], false, "{s}");
    }
    let db = source(&status, "db");
    assert_eq!(db["copies"][0]["target"], "offsite");
    assert_eq!(db["copies"][0]["passed"], true, "{db}");
    assert_eq!(db["rto"]["drill"]["passed"], true, "{db}");
    assert_eq!(db["rto"]["target_seconds"], 600);
    assert_eq!(db["rto"]["breached"], false, "{db}");
    assert!(status["repository"]["size_bytes"].as_u64().unwrap() > 0);
    assert!(status["repository"]["free_bytes"].as_u64().unwrap() > 0);
    // The copies are in the S3 repository, tagged with their source.
    let copied = offsite.vault.json(&["snapshots"]);
    assert_eq!(copied.as_array().unwrap().len(), 2, "{copied}");

    // The metrics file names each source.
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("vault_last_success_timestamp_seconds{source=\"db\"}"),
        "{prom}"
    );
    assert!(
        prom.contains("vault_source_failing{source=\"flaky\"} 1"),
        "{prom}"
    );

    // A TRUNCATE shrinks the dump far below the average: a size alert.
    pg.sql("app", "TRUNCATE big");
    let (_, third) = run_json(&env, &plan, &["db"]);
    assert_eq!(task(&third, "db")["passed"], true);
    assert_eq!(hook.count("alert", "db", "size"), 1, "{:?}", hook.notices());
    let (_, status) = status_json(&env, &plan);
    assert_eq!(source(&status, "db")["size"]["anomaly"], true);

    // The failing source recovers: one recovery notice.
    std::fs::write(&flag, "").unwrap();
    let (_, fourth) = run_json(&env, &plan, &["flaky"]);
    assert_eq!(task(&fourth, "flaky")["passed"], true, "{fourth}");
    assert_eq!(
        hook.count("recovery", "flaky", "failure"),
        1,
        "{:?}",
        hook.notices()
    );
    assert_eq!(hook.count("alert", "flaky", "failure"), 1);
}

/// A plan of one files source with the given RPO target.
fn files_plan(v: &Vault, password: &Path, rpo: &str, name: &str, extra: &str) -> PathBuf {
    let files = v.dir("files");
    std::fs::write(files.join("a.txt"), "content\n").unwrap();
    let plan = v.path().join(name);
    std::fs::write(
        &plan,
        format!(
            "state_dir = \"{}\"\n[repository]\nlocation = \"{}\"\npassword_file = \"{}\"\n\n[[source]]\nname = \"files\"\nkind = \"files\"\npaths = [\"{}\"]\nschedule = \"1h\"\nrpo = \"{rpo}\"\n{extra}",
            v.path().join("state").display(),
            v.repo.display(),
            password.display(),
            files.display()
        ),
    )
    .unwrap();
    plan
}

#[test]
fn rpo_breach_flips_health_and_status_exit_code() {
    let v = Vault::init();
    let password = write_password(&v);
    let env = base_env(&v);
    let met = files_plan(&v, &password, "1h", "met.toml", "");
    let breached = files_plan(&v, &password, "1s", "breached.toml", "");
    let (exit, _) = run_json(&env, &met, &[]);
    assert_eq!(exit, 0);
    let (exit, status) = status_json(&env, &met);
    assert_eq!(exit, 0, "{status}");
    let server = Server::start(&env, &met);
    assert_eq!(get(&server.addr, "/health").0, 200);
    let (code, metrics) = get(&server.addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("vault_rpo_age_seconds{source=\"files\"}"),
        "{metrics}"
    );
    let (code, body) = get(&server.addr, "/api/status");
    assert_eq!(code, 200);
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["sources"][0]["name"], "files");
    assert_eq!(get(&server.addr, "/nothing").0, 404);
    drop(server);

    // The newest snapshot is older than a 1s target.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (exit, status) = status_json(&env, &breached);
    assert_eq!(exit, TARGET_BREACHED, "{status}");
    assert_eq!(source(&status, "files")["rpo"]["breached"], true);
    let server = Server::start(&env, &breached);
    let (code, body) = get(&server.addr, "/health");
    assert_eq!(code, 503);
    assert!(body.contains("RPO breached"), "{body}");
}

#[test]
fn schedule_systemd_units_pass_systemd_analyze_verify() {
    let Some(found) = common::services::require("systemd unit tests", &["systemd-analyze"]) else {
        return;
    };
    let v = Vault::empty();
    let dir = v.dir("units");
    let plan = v.path().join("plan.toml");
    let out = vault(
        &base_env(&v),
        &[
            "schedule",
            "--systemd",
            "--config",
            plan.to_str().unwrap(),
            "--output-dir",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let service = std::fs::read_to_string(dir.join("vault-run.service")).unwrap();
    assert!(
        service.contains(&format!("run --config {}", plan.display())),
        "{service}"
    );
    let verify = Command::new(&found[0])
        .arg("verify")
        .arg(dir.join("vault-run.service"))
        .arg(dir.join("vault-run.timer"))
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let cron = vault(
        &base_env(&v),
        &["schedule", "--cron", "--config", plan.to_str().unwrap()],
    );
    assert!(stdout(&cron).starts_with("* * * * * "), "{}", stdout(&cron));
}

/// `data-value` of the cell `field` in the row of `source` in a dumped DOM.
fn cell(dom: &str, source: &str, field: &str) -> String {
    let row_start = dom
        .find(&format!("data-source=\"{source}\""))
        .unwrap_or_else(|| panic!("no row for {source}"));
    let row = &dom[row_start..];
    let row = &row[..row.find("</tr>").unwrap()];
    let at = row
        .find(&format!("data-field=\"{field}\""))
        .unwrap_or_else(|| panic!("no {field} in the row of {source}"));
    let rest = &row[at..];
    let v = &rest[rest.find("data-value=\"").unwrap() + 12..];
    v[..v.find('"').unwrap()].to_string()
}

#[test]
fn status_page_in_headless_chromium_matches_status_json() {
    let Some(found) = common::services::require("status page browser test", &["chromium"]) else {
        return;
    };
    let v = Vault::init();
    let password = write_password(&v);
    let env = base_env(&v);
    let plan = files_plan(
        &v,
        &password,
        "1h",
        "plan.toml",
        "\n[[source]]\nname = \"broken\"\nkind = \"cmd\"\ncommand = [\"false\"]\nschedule = \"1h\"\nrpo = \"1h\"\n",
    );
    run_json(&env, &plan, &[]);
    run_json(&env, &plan, &["files"]);
    let server = Server::start(&env, &plan);
    let url = format!("http://{}/", server.addr);
    let chromium = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new(&found[0])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1400,700",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .expect("run chromium");
        assert!(out.status.success(), "chromium: {}", stderr(&out));
        out
    };
    let dumped = chromium(&["--dump-dom"]);
    let console: Vec<String> = stderr(&dumped)
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(String::from)
        .collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let dom = stdout(&dumped);
    let (_, status) = status_json(&env, &plan);
    for name in ["files", "broken"] {
        let s = source(&status, name);
        assert_eq!(cell(&dom, name, "healthy"), s["healthy"].to_string());
        let num = |v: &Value| {
            if v.is_null() {
                String::new()
            } else {
                v.to_string()
            }
        };
        let rate: f64 = cell(&dom, name, "success_rate_7d").parse().unwrap();
        assert_eq!(Some(rate), s["success"]["rate_7d"].as_f64(), "{name}");
        assert_eq!(
            cell(&dom, name, "size_bytes"),
            num(&s["size"]["latest_bytes"]),
            "{name}"
        );
        assert_eq!(
            cell(&dom, name, "last_failure"),
            num(&s["last_failure"]["time_seconds"]),
            "{name}"
        );
        // The age grows between the two reads; it must be the same snapshot's.
        let page_age: i64 = cell(&dom, name, "rpo_age_seconds").parse().unwrap_or(-1);
        let json_age = s["rpo"]["age_seconds"].as_i64().unwrap_or(-1);
        assert!(
            (json_age - page_age).abs() <= 5,
            "{name}: page {page_age}, json {json_age}"
        );
    }
    assert!(dom.contains("<svg"), "no chart");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn check_copy_and_prune_tolerate_run_records() {
    let v = Vault::init();
    let password = write_password(&v);
    let env = base_env(&v);
    let plan = files_plan(&v, &password, "1h", "plan.toml", "keep = { last = 1 }\n");
    run_json(&env, &plan, &[]);
    run_json(&env, &plan, &["files"]);
    assert_eq!(v.objects("runs").len(), 2);
    assert_eq!(v.snapshots().len(), 1, "keep last = 1 forgot the older one");
    v.ok(&["check", "--read-data"]);
    v.ok(&["prune"]);
    let other = Vault::init();
    v.ok(&["copy", "--to", other.repo.to_str().unwrap()]);
    assert!(
        other.objects("runs").is_empty(),
        "run records are not copied"
    );
    let (exit, status) = status_json(&env, &plan);
    assert_eq!(exit, 0, "{status}");
    assert_eq!(source(&status, "files")["success"]["runs_7d"], 2);
}
