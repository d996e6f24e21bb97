//! Store URLs: [`StoreUrl`] parses what [`open`](crate::open) takes (`memory:`, `file:DIR`,
//! `lmdb:DIR`, `postgres://...`), [`redact`] shows a URL without its password and
//! [`supported_schemes`] says what this build can open.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use es_core::store::StoreError;

/// The URL schemes this build can open, as a user would write them.
pub fn supported_schemes() -> Vec<&'static str> {
    let mut schemes = vec!["memory:"];
    if cfg!(feature = "file") {
        schemes.push("file:DIR");
    }
    if cfg!(feature = "lmdb") {
        schemes.push("lmdb:DIR");
    }
    if cfg!(feature = "postgres") {
        schemes.push("postgres://USER@HOST:PORT/DB[?schema=NAME]");
    }
    schemes
}

/// [`StoreError::InvalidInput`] saying `what` and listing the schemes this build supports.
pub(crate) fn unsupported(what: &str) -> StoreError {
    StoreError::InvalidInput(format!(
        "{what}; this build supports: {}",
        supported_schemes().join(", ")
    ))
}

/// A parsed store URL: what [`open`](crate::open) takes.
///
/// | URL | store | feature |
/// | --- | --- | --- |
/// | `memory:` | `MemoryStore` (nothing survives the process) | always |
/// | `file:DIR` | [`FileStore`](crate::FileStore) in directory `DIR` | `file` |
/// | `lmdb:DIR` | [`LmdbStore`](crate::LmdbStore) in directory `DIR` | `lmdb` |
/// | `postgres://...`, `postgresql://...` | `PostgresStore` | `postgres` |
///
/// A PostgreSQL URL may carry `schema=NAME` among its query parameters (default
/// `PostgresStore::DEFAULT_SCHEMA`); it is taken out before the rest of the URL is handed to
/// the driver. A scheme this build does not know, or whose feature is off, is
/// [`StoreError::InvalidInput`] listing the schemes this build supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory:`: an in-process store, empty when opened.
    Memory,
    /// `file:DIR`: a [`FileStore`](crate::FileStore) directory.
    File(PathBuf),
    /// `lmdb:DIR`: an [`LmdbStore`](crate::LmdbStore) directory.
    Lmdb(PathBuf),
    /// `postgres://...`: a PostgreSQL database and schema.
    Postgres {
        /// The connection URL as the driver takes it (without `schema=`).
        url: String,
        /// The schema holding the store's tables, when the URL names one.
        schema: Option<String>,
    },
}

impl StoreUrl {
    /// Parses a store URL.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for an unknown scheme, a scheme whose cargo feature is off
    /// in this build, or a `file:`/`lmdb:` URL without a directory; the message lists what
    /// this build supports.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let url = url.trim();
        if url == "memory:" || url == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(unsupported(
                    "this build has no PostgreSQL store (cargo feature `postgres` of es-stores/es-cli)",
                ));
            }
            return Ok(split_schema(url));
        }
        let dir_url = |scheme: &str, rest: &str| -> Result<PathBuf, StoreError> {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                return Err(unsupported(&format!(
                    "`{scheme}:` needs a directory, e.g. `{scheme}:./data`"
                )));
            }
            Ok(PathBuf::from(rest))
        };
        if let Some(rest) = url.strip_prefix("file:") {
            if !cfg!(feature = "file") {
                return Err(unsupported(
                    "this build has no file store (cargo feature `file`)",
                ));
            }
            return Ok(StoreUrl::File(dir_url("file", rest)?));
        }
        if let Some(rest) = url.strip_prefix("lmdb:") {
            if !cfg!(feature = "lmdb") {
                return Err(unsupported(
                    "this build has no LMDB store (cargo feature `lmdb`)",
                ));
            }
            return Ok(StoreUrl::Lmdb(dir_url("lmdb", rest)?));
        }
        let shown = es_core::store::quote_prefix(&redact(url));
        Err(match url.split_once(':') {
            Some((scheme, _)) if !scheme.is_empty() && !scheme.contains(['/', '\\', '.']) => {
                unsupported(&format!("unknown store URL scheme `{scheme}:` in {shown}"))
            }
            _ => unsupported(&format!(
                "{shown} is not a store URL (it has no scheme such as `lmdb:`)"
            )),
        })
    }

    /// The backend's short name: `memory`, `file`, `lmdb` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreUrl::Memory => "memory",
            StoreUrl::File(_) => "file",
            StoreUrl::Lmdb(_) => "lmdb",
            StoreUrl::Postgres { .. } => "postgres",
        }
    }

    /// The directory of a file or LMDB store.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            StoreUrl::File(dir) | StoreUrl::Lmdb(dir) => Some(dir),
            _ => None,
        }
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

/// Shows the URL as a user wrote it, without a PostgreSQL password.
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::File(dir) => write!(f, "file:{}", dir.display()),
            StoreUrl::Lmdb(dir) => write!(f, "lmdb:{}", dir.display()),
            StoreUrl::Postgres { url, schema } => {
                f.write_str(&redact(url))?;
                match schema {
                    Some(schema) if url.contains('?') => write!(f, "&schema={schema}"),
                    Some(schema) => write!(f, "?schema={schema}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Takes `schema=NAME` out of a PostgreSQL URL's query.
fn split_schema(url: &str) -> StoreUrl {
    let Some((base, query)) = url.split_once('?') else {
        return StoreUrl::Postgres {
            url: url.to_owned(),
            schema: None,
        };
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = Some(name.to_owned()),
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    StoreUrl::Postgres { url, schema }
}

/// `url` without the password of its user info, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(StoreUrl::parse("memory:").ok(), Some(StoreUrl::Memory));
        if cfg!(feature = "lmdb") {
            assert_eq!(
                StoreUrl::parse("lmdb:./data").ok(),
                Some(StoreUrl::Lmdb(PathBuf::from("./data")))
            );
        }
        if cfg!(feature = "file") {
            assert_eq!(
                StoreUrl::parse("file:///tmp/x").ok(),
                Some(StoreUrl::File(PathBuf::from("/tmp/x")))
            );
        }
    }

    #[test]
    fn unknown_schemes_list_what_is_supported() {
        for url in ["mysql://x/y", "./data", "", "lmdb:", "redis:x"] {
            let Err(StoreError::InvalidInput(message)) = StoreUrl::parse(url) else {
                panic!("{url:?} parsed");
            };
            assert!(message.contains("memory:"), "{message}");
        }
    }

    #[test]
    fn postgres_schema_is_taken_out_of_the_url() {
        assert_eq!(
            split_schema("postgres://u:pw@h/db?sslmode=disable&schema=es_x"),
            StoreUrl::Postgres {
                url: "postgres://u:pw@h/db?sslmode=disable".to_owned(),
                schema: Some("es_x".to_owned()),
            }
        );
        let shown = split_schema("postgres://u:pw@h/db?schema=s").to_string();
        assert_eq!(shown, "postgres://u:***@h/db?schema=s");
    }
}
