//! Where passwords come from: a file, a command, VAULT_PASSWORD, or a prompt
//! on the terminal. Never from the command line, where `ps` would show it.
//!
//! The secret variables are taken out of the process environment at start,
//! before any thread or child exists: every program vault starts (a
//! snapshot command, pg_dump, psql, a drill server, the password command
//! itself) inherits vault's environment, and none of them may see the
//! repository password.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

use super::args::Global;

pub type Password = Zeroizing<Vec<u8>>;

/// Variables that name or carry a secret. The file and command variables are
/// read by the argument parser before they are removed.
const SECRET_VARIABLES: [&str; 4] = [
    "VAULT_PASSWORD",
    "VAULT_NEW_PASSWORD",
    "VAULT_PASSWORD_FILE",
    "VAULT_PASSWORD_COMMAND",
];

struct EnvSecrets {
    password: Option<Password>,
    new_password: Option<Password>,
}

static ENV_SECRETS: OnceLock<EnvSecrets> = OnceLock::new();

fn take(name: &str) -> Option<Password> {
    let value = std::env::var_os(name)?;
    Some(Zeroizing::new(OsString::into_vec(value)))
}

/// Move the secret variables out of the environment into memory. Must run
/// after the arguments are parsed (they read the file and command
/// variables) and before any thread starts: the environment is shared
/// process state.
pub fn take_secrets_from_environment() {
    let secrets = EnvSecrets {
        password: take("VAULT_PASSWORD"),
        new_password: take("VAULT_NEW_PASSWORD"),
    };
    for name in SECRET_VARIABLES {
        std::env::remove_var(name);
    }
    let _ = ENV_SECRETS.set(secrets);
}

/// Without `take_secrets_from_environment` nothing is read from the
/// environment: a missing call fails loudly ("no password given") rather
/// than leaking the password to children.
fn env_secrets() -> &'static EnvSecrets {
    ENV_SECRETS.get_or_init(|| EnvSecrets {
        password: None,
        new_password: None,
    })
}

fn first_line(bytes: Vec<u8>) -> Password {
    let bytes = Zeroizing::new(bytes);
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..end];
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// An empty password protects nothing; the prompt refuses it, and so does
/// every other source, naming where it came from.
fn non_empty(password: Password, source: impl FnOnce() -> String) -> Result<Password> {
    if password.is_empty() {
        bail!("empty password refused: {} is empty", source());
    }
    Ok(password)
}

fn from_file(path: &Path) -> Result<Password> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading password file {}", path.display()))?;
    non_empty(first_line(bytes), || {
        format!("the first line of password file {}", path.display())
    })
}

/// The command's first word names it in messages; the rest may well hold a
/// secret (`echo hunter2`), so it is never shown.
fn command_name(cmd: &str) -> &str {
    cmd.split_whitespace().next().unwrap_or("")
}

fn from_command(cmd: &str) -> Result<Password> {
    let name = command_name(cmd);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running password command '{name} ...'"))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        bail!("password command '{name} ...' failed ({})", out.status);
    }
    non_empty(first_line(stdout.to_vec()), || {
        format!("the output of password command '{name} ...'")
    })
}

pub fn repository_password(global: &Global) -> Result<Password> {
    if let Some(path) = &global.password_file {
        return from_file(path);
    }
    if let Some(cmd) = &global.password_command {
        return from_command(cmd);
    }
    if let Some(p) = &env_secrets().password {
        return non_empty(p.clone(), || "VAULT_PASSWORD".into());
    }
    prompt("Repository password: ", false)
}

/// A new password (for init, key add, key passwd): from a file, from
/// VAULT_NEW_PASSWORD, or typed twice.
pub fn new_password(file: Option<&Path>, global: &Global, init: bool) -> Result<Password> {
    if let Some(path) = file {
        return from_file(path);
    }
    if let Some(p) = &env_secrets().new_password {
        return non_empty(p.clone(), || "VAULT_NEW_PASSWORD".into());
    }
    if init {
        // For init the repository password sources name the new password.
        if global.password_file.is_some()
            || global.password_command.is_some()
            || env_secrets().password.is_some()
        {
            return repository_password(global);
        }
    }
    prompt("New password: ", true)
}

fn prompt(text: &str, confirm: bool) -> Result<Password> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: set VAULT_PASSWORD, or use --password-file or --password-command"
        );
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(text)
            .context("reading password")?
            .into_bytes(),
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat it: ")
                .context("reading password")?
                .into_bytes(),
        );
        if *first != *again {
            bail!("the two passwords differ");
        }
    }
    if first.is_empty() {
        bail!("empty password refused");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_command_is_named_by_its_first_word_only() {
        assert_eq!(command_name("echo hunter2"), "echo");
        assert_eq!(command_name("  pass show vault "), "pass");
    }
}
