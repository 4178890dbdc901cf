use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use super::{kdf, open, print_json};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::output::{local_time, rfc3339_utc};
use crate::cli::password::new_password;

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
