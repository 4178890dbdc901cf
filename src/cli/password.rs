//! Where passwords come from: a file, a command, VAULT_PASSWORD, or a prompt
//! on the terminal. Never from the command line, where `ps` would show it.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

use super::args::Global;

pub type Password = Zeroizing<Vec<u8>>;

fn first_line(bytes: Vec<u8>) -> Password {
    let bytes = Zeroizing::new(bytes);
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..end];
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn from_file(path: &Path) -> Result<Password> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading password file {}", path.display()))?;
    Ok(first_line(bytes))
}

pub fn repository_password(global: &Global) -> Result<Password> {
    if let Some(path) = &global.password_file {
        return from_file(path);
    }
    if let Some(cmd) = &global.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running password command '{cmd}'"))?;
        if !out.status.success() {
            bail!("password command '{cmd}' failed ({})", out.status);
        }
        return Ok(first_line(out.stdout));
    }
    if let Some(p) = std::env::var_os("VAULT_PASSWORD") {
        return Ok(Zeroizing::new(
            std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec(),
        ));
    }
    prompt("Repository password: ", false)
}

/// A new password (for init, key add, key passwd): from a file, from
/// VAULT_NEW_PASSWORD, or typed twice.
pub fn new_password(file: Option<&Path>, global: &Global, init: bool) -> Result<Password> {
    if let Some(path) = file {
        return from_file(path);
    }
    if let Some(p) = std::env::var_os("VAULT_NEW_PASSWORD") {
        return Ok(Zeroizing::new(
            std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec(),
        ));
    }
    if init {
        // For init the repository password sources name the new password.
        if global.password_file.is_some()
            || global.password_command.is_some()
            || std::env::var_os("VAULT_PASSWORD").is_some()
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
