//! A throwaway MariaDB server in a temp dir, on a unix socket with
//! networking off, with a root password. Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::Watched;

pub const ROOT_PASSWORD: &str = "maria secret";

/// The programs the MariaDB tests need.
pub struct Programs {
    pub install_db: PathBuf,
    pub server: PathBuf,
    pub client: PathBuf,
    pub dump: PathBuf,
}

/// The programs, or None after saying loudly why the tests skip.
pub fn programs() -> Option<Programs> {
    let found = super::services::require(
        "mariadb tests",
        &["mariadb-install-db", "mariadbd", "mariadb", "mariadb-dump"],
    )?;
    Some(Programs {
        install_db: found[0].clone(),
        server: found[1].clone(),
        client: found[2].clone(),
        dump: found[3].clone(),
    })
}

/// As root, the server must be told to stay root (it refuses otherwise);
/// as anyone else it runs as that user.
fn as_root() -> Option<&'static str> {
    super::is_root().then_some("--user=root")
}

pub struct MariaDb {
    dir: TempDir,
    pub socket: PathBuf,
    pub client: PathBuf,
    pub dump: PathBuf,
    child: Child,
}

impl MariaDb {
    pub fn start(p: &Programs) -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("vault-mariadb-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        // A private temporary folder: servers of tests running side by side
        // must not share (and clean up) one another's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let install = Command::new(&p.install_db)
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(as_root())
            .stdin(Stdio::null())
            .watched_output();
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
        let socket = dir.path().join("mysqld.sock");
        let child = Command::new(&p.server)
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .args(["--skip-networking", "--innodb-buffer-pool-size=32M"])
            .args(as_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let mut m = MariaDb {
            dir,
            socket,
            client: p.client.clone(),
            dump: p.dump.clone(),
            child,
        };
        m.wait_ready();
        m.sql_with_password(
            "",
            &format!("ALTER USER root@localhost IDENTIFIED BY '{ROOT_PASSWORD}'"),
        );
        m
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mariadbd exited ({status}): {}", self.log());
            }
            let ping = self
                .client_command("")
                .arg("--execute=SELECT 1")
                .watched_output();
            if ping.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The client, connected as root over the socket, reading no option
    /// files; `password` goes through MYSQL_PWD.
    pub fn client_command(&self, password: &str) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--user=root")
            .arg("--default-character-set=utf8mb4")
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null());
        c
    }

    fn sql_with_password(&self, password: &str, sql: &str) -> String {
        let out = self
            .client_command(password)
            .args(["--batch", "--skip-column-names"])
            .arg(format!("--execute={sql}"))
            .watched_output();
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run SQL as root; its batch output.
    pub fn sql(&self, sql: &str) -> String {
        self.sql_with_password(ROOT_PASSWORD, sql)
    }

    /// A dump of one database, made the way vault makes it.
    pub fn dump(&self, database: &str) -> Vec<u8> {
        let conn = vault::engines::mysql::MysqlConnection {
            dump_program: Some(self.dump.clone().into()),
            socket: Some(self.socket.clone()),
            user: Some("root".into()),
            ..Default::default()
        };
        let out = conn
            .dump_command(database)
            .env("MYSQL_PWD", ROOT_PASSWORD)
            .stdin(Stdio::null())
            .watched_output();
        assert!(
            out.status.success(),
            "mariadb-dump {database} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SIGTERM: a clean shutdown is quick on a small server; SIGKILL
        // after a grace period keeps a stuck one from outliving the test.
        // SAFETY: kill has no memory preconditions; the child is not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
