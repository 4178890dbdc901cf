use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::format::config::ChunkerParams;
use vault::repo::InitOptions;
use vault::Repository;

use super::key::KdfArgs;
use super::{kdf, location, open_options, print_json, storage, WaitFor};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::password::new_password;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Smallest chunk, in bytes
    #[arg(long)]
    pub chunk_min: Option<u32>,
    /// Average chunk, in bytes (a power of two)
    #[arg(long)]
    pub chunk_avg: Option<u32>,
    /// Largest chunk, in bytes
    #[arg(long)]
    pub chunk_max: Option<u32>,
    /// Target pack size, in MiB
    #[arg(long)]
    pub pack_size_mib: Option<u32>,
    /// Default zstd level, 0 (off) to 22
    #[arg(long)]
    pub compression: Option<i32>,
    /// Repository format version: 2 (default) stores deltas; 1 stays
    /// readable by older vault builds (`vault upgrade` moves it on)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3))]
    pub format_version: Option<u32>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

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
    let open = open_options(g, WaitFor::Other);
    let backend = storage(&loc, true, &open.transport)?;
    let repo = Repository::init(backend, &password, &options, &open)?;
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
