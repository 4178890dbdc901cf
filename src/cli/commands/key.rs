use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use super::{kdf, open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{local_time, rfc3339_utc};
use crate::cli::password::new_password;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key objects (one per password)
    List,
    /// Add a password
    Add {
        /// Read the new password from this file
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a password's key (not the one used to open)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the password used to open the repository
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct KdfArgs {
    /// argon2id memory for this password's key, in KiB
    #[arg(long)]
    pub kdf_memory_kib: Option<u32>,
    /// argon2id passes for this password's key
    #[arg(long)]
    pub kdf_iterations: Option<u32>,
}

pub(super) fn key(g: &Global, k: KeyCommand) -> Result<i32> {
    match k {
        KeyCommand::List => {
            let repo = open(g)?;
            let keys = repo.list_keys()?;
            if g.json {
                print_json(&serde_json::Value::Array(
                    keys.iter()
                        .map(|k| json!({"id": k.id.to_hex(), "current": k.current, "created": rfc3339_utc(k.created), "host": k.host, "user": k.user}))
                        .collect(),
                ))?;
            } else {
                println!(" {:<8}  {:<19}  {:<12}  user", "id", "created", "host");
                for k in keys {
                    println!(
                        "{}{:<8}  {:<19}  {:<12}  {}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        local_time(k.created),
                        k.host,
                        k.user
                    );
                }
            }
        }
        KeyCommand::Add {
            new_password_file,
            kdf: kdf_args,
        } => {
            let repo = open(g)?;
            let password = new_password(new_password_file.as_deref(), g, false)?;
            let id = repo.add_key(&password, &kdf(&kdf_args))?;
            if !g.quiet {
                println!("added key {}", id.short());
            }
        }
        KeyCommand::Remove { id } => {
            let repo = open(g)?;
            let id = repo.find_key(&id)?;
            repo.remove_key(&id)?;
            if !g.quiet {
                println!("removed key {}", id.short());
            }
        }
        KeyCommand::Passwd {
            new_password_file,
            kdf: kdf_args,
        } => {
            let repo = open(g)?;
            let password = new_password(new_password_file.as_deref(), g, false)?;
            let mut repo =
                Arc::try_unwrap(repo).map_err(|_| anyhow::anyhow!("repository still shared"))?;
            let id = repo.change_password(&password, &kdf(&kdf_args))?;
            if !g.quiet {
                println!("password changed; new key {}", id.short());
            }
        }
    }
    Ok(exit::OK)
}
