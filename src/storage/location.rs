//! Where a repository lives, parsed from `--repo`: a plain path, `memory:`,
//! or a URL naming a remote service. Parsing only; building the storage
//! operator for a location is `remote.rs`'s job.

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};

/// The remote services this build can reach. Adding an opendal service is a
/// variant here, a scheme in `Service::from_scheme`, and a builder arm in
/// `remote.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    Sftp,
    /// WebDAV over https (`webdav://`) or plain http (`webdav+http://`).
    Webdav {
        tls: bool,
    },
    Gcs,
    Azblob,
}

impl Service {
    fn from_scheme(scheme: &str) -> Option<Service> {
        Some(match scheme {
            "s3" => Service::S3,
            "sftp" => Service::Sftp,
            "webdav" | "webdavs" | "webdav+https" => Service::Webdav { tls: true },
            "webdav+http" => Service::Webdav { tls: false },
            "gcs" | "gs" => Service::Gcs,
            "azblob" => Service::Azblob,
            _ => return None,
        })
    }

    pub fn scheme(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Sftp => "sftp",
            Service::Webdav { tls: true } => "webdav",
            Service::Webdav { tls: false } => "webdav+http",
            Service::Gcs => "gcs",
            Service::Azblob => "azblob",
        }
    }

    /// Whether the first part of the URL is a bucket or container (object
    /// stores) rather than a host.
    fn names_a_bucket(self) -> bool {
        matches!(self, Service::S3 | Service::Gcs | Service::Azblob)
    }
}

/// A repository on a remote service: `scheme://authority/root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub service: Service,
    /// The bucket or container for object stores; `[user@]host[:port]` for
    /// sftp and WebDAV.
    pub authority: String,
    /// The prefix inside the bucket, or the folder on the host, without
    /// leading or trailing slashes (empty for the bucket's top).
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Memory,
    Remote(Remote),
}

const SCHEMES: &str = "s3://, sftp://, webdav://, webdav+http://, gcs://, azblob://";

impl Location {
    pub fn parse(s: &str) -> Result<Self> {
        if s == "memory:" {
            return Ok(Location::Memory);
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            return parse_remote(scheme, rest).map(Location::Remote);
        }
        let path = s.strip_prefix("local:").unwrap_or(s);
        if path.is_empty() {
            return Err(Error::invalid("empty repository path"));
        }
        Ok(Location::Local(PathBuf::from(path)))
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }
}

fn parse_remote(scheme: &str, rest: &str) -> Result<Remote> {
    let lower = scheme.to_ascii_lowercase();
    let service = Service::from_scheme(&lower).ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!("repository scheme '{scheme}://' is not supported (use a local path or one of {SCHEMES})"),
        )
    })?;
    if rest.contains(['?', '#']) {
        return Err(Error::invalid(format!(
            "{lower}://{rest}: query strings are not part of a repository URL; \
             endpoint and credentials come from the environment"
        )));
    }
    let (authority, root) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        let what = if service.names_a_bucket() {
            "bucket"
        } else {
            "host"
        };
        return Err(Error::invalid(format!(
            "{lower}://{rest}: no {what} given (expected {lower}://{what}/path)"
        )));
    }
    if service.names_a_bucket() && authority.contains(['@', ':']) {
        return Err(Error::invalid(format!(
            "{lower}://{rest}: '{authority}' is not a bucket name; credentials and \
             endpoint come from the environment, not the URL"
        )));
    }
    let root = root
        .split('/')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>();
    if root.iter().any(|part| *part == "." || *part == "..") {
        return Err(Error::invalid(format!(
            "{lower}://{rest}: '.' and '..' are not allowed in a repository path"
        )));
    }
    Ok(Remote {
        service,
        authority: authority.to_string(),
        root: root.join("/"),
    })
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "local:{}", p.display()),
            Location::Memory => f.write_str("memory:"),
            Location::Remote(r) => write!(f, "{r}"),
        }
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}/{}",
            self.service.scheme(),
            self.authority,
            self.root
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> Remote {
        match Location::parse(s) {
            Ok(Location::Remote(r)) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn object_store_urls_split_into_bucket_and_prefix() {
        let r = remote("s3://backups/nightly//db/");
        assert_eq!(r.service, Service::S3);
        assert_eq!(r.authority, "backups");
        assert_eq!(r.root, "nightly/db");
        assert_eq!(r.to_string(), "s3://backups/nightly/db");
        assert_eq!(remote("s3://backups").root, "");
        assert_eq!(remote("gs://b/p").service, Service::Gcs);
        assert_eq!(remote("AZBLOB://c/p").service, Service::Azblob);
    }

    #[test]
    fn host_urls_keep_user_and_port() {
        let r = remote("sftp://backup@host.example:2222/srv/repo");
        assert_eq!(r.authority, "backup@host.example:2222");
        assert_eq!(r.root, "srv/repo");
        assert_eq!(
            remote("webdav+http://127.0.0.1:8080/dav").service,
            Service::Webdav { tls: false }
        );
        assert_eq!(
            remote("webdav://dav.example/r").service,
            Service::Webdav { tls: true }
        );
    }

    #[test]
    fn paths_and_memory_stay_local() {
        assert_eq!(
            Location::parse("/srv/repo").ok(),
            Some(Location::Local("/srv/repo".into()))
        );
        assert_eq!(
            Location::parse("local:rel/repo").ok(),
            Some(Location::Local("rel/repo".into()))
        );
        assert_eq!(Location::parse("memory:").ok(), Some(Location::Memory));
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let kind = |s: &str| Location::parse(s).err().map(|e| e.kind());
        assert_eq!(kind("ftp://host/x"), Some(ErrorKind::Unsupported));
        assert_eq!(kind("s3:///prefix"), Some(ErrorKind::InvalidInput));
        assert_eq!(
            kind("s3://key:secret@bucket/x"),
            Some(ErrorKind::InvalidInput)
        );
        assert_eq!(kind("s3://bucket/a/../b"), Some(ErrorKind::InvalidInput));
        assert_eq!(
            kind("s3://bucket/x?region=eu"),
            Some(ErrorKind::InvalidInput)
        );
        assert_eq!(kind(""), Some(ErrorKind::InvalidInput));
    }
}
