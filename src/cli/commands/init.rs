use anyhow::Result;
use serde_json::json;
use vault::format::config::ChunkerParams;
use vault::repo::InitOptions;
use vault::Repository;

use super::{cache_options, kdf, location, print_json, storage};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::password::new_password;

pub(super) fn init(g: &Global, a: InitArgs) -> Result<i32> {
    let loc = location(g)?;
    let d = InitOptions::default();
    let options = InitOptions {
        chunker: ChunkerParams {
            min: a.chunk_min.unwrap_or(d.chunker.min),
            avg: a.chunk_avg.unwrap_or(d.chunker.avg),
            max: a.chunk_max.unwrap_or(d.chunker.max),
            ..d.chunker
        },
        pack_target: a
            .pack_size_mib
            .map(|m| m.saturating_mul(1 << 20))
            .unwrap_or(d.pack_target),
        compression: a.compression.unwrap_or(d.compression),
        repo_version: a.format_version.unwrap_or(d.repo_version),
        kdf: kdf(&a.kdf),
    };
    let password = new_password(None, g, true)?;
    let backend = storage(g, &loc, true)?;
    let repo = Repository::init(backend, &password, &options, &cache_options(g))?;
    if g.json {
        print_json(
            &json!({ "repository": loc.to_string(), "id": repo.config().repo_id.to_hex() }),
        )?;
    } else if !g.quiet {
        println!(
            "created repository {} at {loc}",
            repo.config().repo_id.short()
        );
    }
    Ok(exit::OK)
}
