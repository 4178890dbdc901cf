//! `vault upgrade`: move a repository to the newest format version. Only
//! the config changes (its repository format field); every object already
//! stored is valid in the new version as it is, so there is nothing to
//! rewrite and nothing to lose. Planned first; done under the exclusive
//! lock, after reading the config again (another client may have upgraded
//! it meanwhile).

use std::sync::Arc;

use crate::error::Result;
use crate::format::REPO_VERSION;
use crate::repo::Repository;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradePlan {
    pub from: u32,
    pub to: u32,
}

impl UpgradePlan {
    pub fn is_empty(&self) -> bool {
        self.from >= self.to
    }

    /// What the move enables, one line per version crossed.
    pub fn changes(&self) -> Vec<&'static str> {
        let mut out = vec![];
        if self.from < 2 && self.to >= 2 {
            out.push("version 2: new chunks may be stored as deltas against the parent snapshot's");
        }
        if self.from < 3 && self.to >= 3 {
            out.push(
                "version 3: deltas may chain (skip-deltas), so hourly costs stay flat over the day",
            );
        }
        out
    }
}

/// What an upgrade would do, from the config as stored now.
pub fn plan(repo: &Repository) -> Result<UpgradePlan> {
    Ok(UpgradePlan {
        from: repo.stored_config()?.repo_version,
        to: REPO_VERSION,
    })
}

/// Rewrite the config at the newest version. Returns the plan carried out
/// (empty if the repository was already up to date).
pub fn upgrade(repo: &Arc<Repository>) -> Result<UpgradePlan> {
    let _lock = repo.lock_exclusive("upgrade")?;
    let mut config = repo.stored_config()?;
    let done = UpgradePlan {
        from: config.repo_version,
        to: REPO_VERSION,
    };
    if !done.is_empty() {
        config.repo_version = REPO_VERSION;
        repo.rewrite_config(&config)?;
    }
    Ok(done)
}
