//! Building an opendal operator for a remote location: the service from the
//! URL, endpoint and credentials from the environment (never from the URL,
//! so they stay out of shell history and process listings), and the
//! transport layers every remote service gets: retries, timeouts, a
//! connection limit and request counting.

use std::sync::Arc;
use std::time::Duration;

use opendal::layers::{ConcurrentLimitLayer, HttpClientLayer, RetryLayer, TimeoutLayer};
use opendal::raw::HttpClient;
use opendal::{services, Operator};

use super::location::{Remote, Service};
use super::requests::{Counters, CountingClient};
use crate::error::{Error, ErrorKind, Result};

/// How a remote backend talks to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Requests in flight at once.
    pub connections: usize,
    /// Attempts after the first for a request that failed transiently
    /// (5xx, 429, timeouts, dropped connections).
    pub retries: usize,
    /// Longest a whole metadata request (stat, list page, delete) may take.
    pub timeout: Duration,
    /// Longest a read or write may go without progress.
    pub io_timeout: Duration,
    /// Say on stderr what is retried, and when (for a person watching).
    pub announce_retries: bool,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            connections: 8,
            retries: 8,
            timeout: Duration::from_secs(60),
            io_timeout: Duration::from_secs(60),
            announce_retries: false,
        }
    }
}

/// Reads one environment variable; a parameter so tests can pass their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn first(env: Env<'_>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env(n))
}

fn config_error(remote: &Remote, e: opendal::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{remote}: cannot configure the backend: {e}"),
    )
}

fn required(remote: &Remote, env: Env<'_>, name: &str) -> Result<String> {
    env(name).ok_or_else(|| {
        Error::invalid(format!(
            "{remote}: {name} is not set (the {} backend needs it)",
            remote.service.scheme()
        ))
    })
}

/// The endpoint a remote location's requests go to, when the environment
/// names one (the service's default otherwise).
pub fn endpoint(remote: &Remote, env: Env<'_>) -> Option<String> {
    match remote.service {
        Service::S3 => first(env, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
        Service::Gcs => env("VAULT_GCS_ENDPOINT"),
        Service::Azblob => env("AZURE_STORAGE_ENDPOINT"),
        Service::Sftp | Service::Webdav { .. } => None,
    }
}

/// Whether the S3 signer will find credentials without asking a server:
/// keys in the environment, a web identity or container credentials
/// setting, or a shared credentials or config file that holds some.
fn s3_credentials_configured(env: Env<'_>) -> bool {
    if env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some() {
        return true;
    }
    if [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|v| env(v).is_some())
    {
        return true;
    }
    let home = env("HOME");
    let in_home = |name: &str| home.as_ref().map(|h| format!("{h}/.aws/{name}"));
    [
        env("AWS_SHARED_CREDENTIALS_FILE").or_else(|| in_home("credentials")),
        env("AWS_CONFIG_FILE").or_else(|| in_home("config")),
    ]
    .iter()
    .flatten()
    .any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            [
                "aws_access_key_id",
                "role_arn",
                "credential_process",
                "sso_",
            ]
            .iter()
            .any(|k| text.contains(k))
        })
    })
}

/// An EC2 instance, whose role credentials come from the metadata service.
/// Asked of the local firmware tables, so no request leaves the machine.
fn on_ec2() -> bool {
    [
        "/sys/devices/virtual/dmi/id/sys_vendor",
        "/sys/devices/virtual/dmi/id/board_asset_tag",
    ]
    .iter()
    .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("Amazon") || t.starts_with("i-")))
}

/// The bare service operator, before transport layers.
fn service_operator(remote: &Remote, env: Env<'_>) -> Result<Operator> {
    let root = format!("/{}", remote.root);
    let built = match remote.service {
        Service::S3 => {
            let mut b = services::S3::default()
                .bucket(&remote.authority)
                .root(&root);
            let endpoint = first(env, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]);
            if let Some(endpoint) = &endpoint {
                b = b.endpoint(endpoint);
            }
            // S3-compatible servers rarely care about the region, but
            // signing needs one; AWS itself takes it from the environment
            // or ~/.aws/config (loaded by the builder).
            match first(env, &["AWS_REGION", "AWS_DEFAULT_REGION"]) {
                Some(region) => b = b.region(&region),
                None if endpoint.is_some() => b = b.region("us-east-1"),
                None => {}
            }
            if let Some(v) = env("AWS_ACCESS_KEY_ID") {
                b = b.access_key_id(&v);
            }
            if let Some(v) = env("AWS_SECRET_ACCESS_KEY") {
                b = b.secret_access_key(&v);
            }
            if let Some(v) = env("AWS_SESSION_TOKEN") {
                b = b.session_token(&v);
            }
            // The metadata service exists only on EC2 and only for AWS
            // itself; asked anywhere else it costs every retry in silence.
            let metadata = endpoint.is_none()
                && env("AWS_EC2_METADATA_DISABLED").is_none_or(|v| v != "true")
                && on_ec2();
            if !metadata {
                b = b.disable_ec2_metadata();
                if !s3_credentials_configured(env) {
                    return Err(Error::new(
                        ErrorKind::PermissionDenied,
                        format!(
                            "{remote}{}: no S3 credentials: set AWS_ACCESS_KEY_ID and \
                             AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials",
                            endpoint
                                .as_deref()
                                .map(|e| format!(" at {e}"))
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
            if env("VAULT_S3_VIRTUAL_HOST_STYLE").is_some_and(|v| v == "1" || v == "true") {
                b = b.enable_virtual_host_style();
            }
            Operator::new(b).map(|o| o.finish())
        }
        Service::Sftp => {
            let (user, host) = match remote.authority.split_once('@') {
                Some((user, host)) => (Some(user), host),
                None => (None, remote.authority.as_str()),
            };
            let mut b = services::Sftp::default()
                .endpoint(&format!("ssh://{host}"))
                .root(&root);
            if let Some(user) = user {
                b = b.user(user);
            }
            if let Some(key) = env("VAULT_SFTP_KEY") {
                b = b.key(&key);
            }
            Operator::new(b).map(|o| o.finish())
        }
        Service::Webdav { tls } => {
            let scheme = if tls { "https" } else { "http" };
            let mut b = services::Webdav::default()
                .endpoint(&format!("{scheme}://{}", remote.authority))
                .root(&root);
            if let Some(user) = env("VAULT_WEBDAV_USERNAME") {
                b = b.username(&user);
            }
            if let Some(password) = env("VAULT_WEBDAV_PASSWORD") {
                b = b.password(&password);
            }
            Operator::new(b).map(|o| o.finish())
        }
        Service::Gcs => {
            let mut b = services::Gcs::default()
                .bucket(&remote.authority)
                .root(&root);
            if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
                b = b.credential_path(&path);
            }
            if let Some(endpoint) = env("VAULT_GCS_ENDPOINT") {
                b = b.endpoint(&endpoint);
            }
            Operator::new(b).map(|o| o.finish())
        }
        Service::Azblob => {
            let account = required(remote, env, "AZURE_STORAGE_ACCOUNT")?;
            let endpoint = env("AZURE_STORAGE_ENDPOINT")
                .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
            let mut b = services::Azblob::default()
                .container(&remote.authority)
                .root(&root)
                .endpoint(&endpoint)
                .account_name(&account);
            if let Some(key) = env("AZURE_STORAGE_KEY") {
                b = b.account_key(&key);
            }
            if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
                b = b.sas_token(&sas);
            }
            Operator::new(b).map(|o| o.finish())
        }
    };
    built.map_err(|e| config_error(remote, e))
}

/// An operator for `remote` with retries, timeouts, the connection limit
/// and request counting. The counters are returned for the backend to read.
pub(super) fn operator(
    remote: &Remote,
    transport: &Transport,
    env: Env<'_>,
) -> Result<(Operator, Arc<Counters>)> {
    let counters = Arc::new(Counters::default());
    let client = HttpClient::with(CountingClient::new(counters.clone()));
    let announce = transport.announce_retries;
    let place = match endpoint(remote, env) {
        Some(e) => format!("{remote} at {e}"),
        None => remote.to_string(),
    };
    let op = service_operator(remote, env)?
        // Innermost: every HTTP request, retried ones included, is counted.
        .layer(HttpClientLayer::new(client))
        .layer(ConcurrentLimitLayer::new(transport.connections.max(1)))
        .layer(
            TimeoutLayer::new()
                .with_timeout(transport.timeout)
                .with_io_timeout(transport.io_timeout),
        )
        // Outermost, so a request that timed out is retried too.
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(transport.retries)
                .with_notify(move |e: &opendal::Error, wait: Duration| {
                    if announce {
                        eprintln!(
                            "vault: {place}: {}; retrying in {:.1}s",
                            retry_reason(e),
                            wait.as_secs_f64()
                        );
                    }
                }),
        );
    Ok((op, counters))
}

/// What a failed remote request means for the user: a kind that picks the
/// exit code and a short reason (the service's full answer is long and
/// spans lines).
pub(super) fn classify(e: &opendal::Error) -> (ErrorKind, String) {
    use opendal::ErrorKind as Od;
    let text = e.to_string();
    let code = service_error_code(&text);
    let with_code = |reason: &str| match &code {
        Some(code) => format!("{reason} ({code})"),
        None => reason.to_string(),
    };
    if code.as_deref() == Some("NoSuchBucket") || text.contains("ContainerNotFound") {
        return (ErrorKind::Unavailable, "the bucket does not exist".into());
    }
    match e.kind() {
        Od::NotFound => (ErrorKind::NotFound, "not found".into()),
        Od::PermissionDenied => (
            ErrorKind::PermissionDenied,
            with_code("access denied: check the credentials and the bucket's permissions"),
        ),
        Od::ConfigInvalid => (ErrorKind::InvalidInput, with_code("invalid configuration")),
        Od::RateLimited => (
            ErrorKind::Unavailable,
            with_code("rate limited, retries exhausted"),
        ),
        Od::AlreadyExists => (ErrorKind::AlreadyExists, "already exists".into()),
        _ if looks_like_network(&text) => (
            ErrorKind::Unavailable,
            "cannot reach the server (connection failed or timed out, retries exhausted)".into(),
        ),
        _ if e.is_temporary() || e.is_persistent() => (
            ErrorKind::Unavailable,
            with_code("the server keeps failing (retries exhausted)"),
        ),
        _ => (
            ErrorKind::Unavailable,
            with_code("the server refused the request"),
        ),
    }
}

/// Why a request is being retried, in a few words.
fn retry_reason(e: &opendal::Error) -> String {
    let text = e.to_string();
    if looks_like_network(&text) {
        return "cannot reach the server".into();
    }
    match service_error_code(&text) {
        Some(code) => format!("the server answered {code}"),
        None => format!("{} error", e.kind()).to_lowercase(),
    }
}

fn looks_like_network(text: &str) -> bool {
    [
        "error sending request",
        "connection refused",
        "Connection refused",
        "connection reset",
        "timed out",
        "operation timeout",
        "dns error",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// The error code an object store put in its answer (`code: "NoSuchBucket"`
/// in S3's parsed error, `<Code>...</Code>` in raw XML).
fn service_error_code(text: &str) -> Option<String> {
    let after = |marker: &str, end: char| {
        let start = text.find(marker)? + marker.len();
        let len = text[start..].find(end)?;
        let code = &text[start..start + len];
        (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| code.to_string())
    };
    after("code: \"", '"').or_else(|| after("<Code>", '<'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn od(kind: opendal::ErrorKind, msg: &str) -> opendal::Error {
        opendal::Error::new(kind, msg)
    }

    #[test]
    fn service_answers_map_to_kinds_users_can_act_on() {
        use opendal::ErrorKind as Od;
        let bucket = od(
            Od::NotFound,
            r#"S3Error { code: "NoSuchBucket", message: "x" }"#,
        );
        assert_eq!(classify(&bucket).0, ErrorKind::Unavailable);
        assert!(classify(&bucket).1.contains("bucket does not exist"));
        let creds = od(
            Od::PermissionDenied,
            r#"S3Error { code: "InvalidAccessKeyId" }"#,
        );
        let (kind, reason) = classify(&creds);
        assert_eq!(kind, ErrorKind::PermissionDenied);
        assert!(reason.contains("InvalidAccessKeyId"), "{reason}");
        assert_eq!(classify(&od(Od::NotFound, "gone")).0, ErrorKind::NotFound);
        let down = od(
            Od::Unexpected,
            "send http request: error sending request for url",
        );
        assert!(classify(&down).1.contains("cannot reach"));
        assert_eq!(classify(&down).0, ErrorKind::Unavailable);
    }

    #[test]
    fn error_codes_are_found_in_parsed_and_raw_answers() {
        assert_eq!(
            service_error_code(r#"x S3Error { code: "SlowDown", message: "" }"#).as_deref(),
            Some("SlowDown")
        );
        assert_eq!(
            service_error_code("<Error><Code>AccessDenied</Code></Error>").as_deref(),
            Some("AccessDenied")
        );
        assert_eq!(service_error_code("code: \"has space\""), None);
        assert_eq!(service_error_code("nothing here"), None);
    }

    #[test]
    fn s3_settings_come_from_the_environment() {
        let remote = Remote {
            service: Service::S3,
            authority: "bucket".into(),
            root: "a/b".into(),
        };
        let env = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("key".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let op = service_operator(&remote, &env).expect("an endpoint suffices");
        let info = op.info();
        assert_eq!(info.name(), "bucket");
        assert_eq!(info.root(), "/a/b/");
    }

    #[test]
    fn azblob_without_an_account_names_the_variable() {
        let remote = Remote {
            service: Service::Azblob,
            authority: "c".into(),
            root: String::new(),
        };
        let Err(err) = service_operator(&remote, &|_| None) else {
            panic!("an Azure location without an account must be refused");
        };
        assert!(err.to_string().contains("AZURE_STORAGE_ACCOUNT"), "{err}");
    }
}
