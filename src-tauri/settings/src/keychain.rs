//! The provider token, kept in the OS keychain and nowhere else.
//!
//! The token authenticates this Mac to the coordinator (and to its earnings endpoint), so it never
//! goes into `settings.toml`, and [`ProviderToken`]'s `Debug` prints `<redacted>` so a stray `{:?}`
//! in a log line cannot leak it. It is zeroed from memory when dropped.
//!
//! Backends (keyring 3): the macOS Keychain; on Linux the kernel's keyutils (works headless, no
//! daemon; entries live in the session/persistent keyrings); Windows Credential Manager. Entries use
//! service [`PROVIDER_TOKEN_SERVICE`] and the provider id as the account.
//!
//! For headless and CI use, `HEARTH_PROVIDER_TOKEN` overrides the keychain ([`resolve_token`]).

use std::fmt;

use zeroize::Zeroizing;

use crate::validate::is_safe_provider_id;

/// The keychain service name of the provider token.
pub const PROVIDER_TOKEN_SERVICE: &str = "dev.hearth.provider";
/// The environment variable that, when set and non-empty, is used instead of the keychain.
pub const PROVIDER_TOKEN_ENV: &str = "HEARTH_PROVIDER_TOKEN";

/// Keychain failures. None of them ever carries the token.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    /// No usable keychain backend (no keyutils in this kernel/container, a locked keychain, …).
    #[error("the keychain is not available: {0}")]
    Unavailable(String),
    #[error("provider id {0:?} is not a safe id (letters, digits, '-', '_', '.', at most 128)")]
    InvalidProviderId(String),
    #[error("invalid provider token: {0}")]
    InvalidToken(&'static str),
    /// The stored secret is not UTF-8 (written by something else). Its bytes are not kept.
    #[error("the stored provider token is not valid UTF-8")]
    BadEncoding,
    #[error("keychain error: {0}")]
    Other(String),
}

impl From<keyring::Error> for KeychainError {
    fn from(e: keyring::Error) -> Self {
        match e {
            keyring::Error::PlatformFailure(inner) => KeychainError::Unavailable(inner.to_string()),
            keyring::Error::NoStorageAccess(inner) => KeychainError::Unavailable(inner.to_string()),
            keyring::Error::BadEncoding(_) => KeychainError::BadEncoding,
            other => KeychainError::Other(other.to_string()),
        }
    }
}

/// A provider token. Its `Debug` redacts; there is no `Display` and no `Serialize`, so the only
/// way to the text is the explicit [`ProviderToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderToken(Zeroizing<String>);

impl ProviderToken {
    /// Accepts a token that can travel in an `Authorization: Bearer` header: non-empty, at most
    /// 4096 bytes, printable ASCII without spaces.
    pub fn new(token: impl Into<String>) -> Result<Self, KeychainError> {
        let token = Zeroizing::new(token.into());
        if token.is_empty() {
            return Err(KeychainError::InvalidToken("empty"));
        }
        if token.len() > 4096 {
            return Err(KeychainError::InvalidToken("longer than 4096 bytes"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeychainError::InvalidToken("contains spaces, control or non-ASCII characters"));
        }
        Ok(ProviderToken(token))
    }

    /// The secret itself, for the `Authorization` header. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderToken(<redacted>)")
    }
}

/// Where a resolved token came from (the UI says so: an env override explains a surprise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Env,
    Keychain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedToken {
    pub token: ProviderToken,
    pub source: TokenSource,
}

/// The provider-token entries of one keychain service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keychain {
    service: String,
}

impl Default for Keychain {
    fn default() -> Self {
        Keychain::new()
    }
}

impl Keychain {
    /// The real service, [`PROVIDER_TOKEN_SERVICE`].
    pub fn new() -> Self {
        Keychain::with_service(PROVIDER_TOKEN_SERVICE)
    }

    /// Another service name (tests, a second instance).
    pub fn with_service(service: impl Into<String>) -> Self {
        Keychain { service: service.into() }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    fn entry(&self, provider_id: &str) -> Result<keyring::Entry, KeychainError> {
        if !is_safe_provider_id(provider_id) {
            return Err(KeychainError::InvalidProviderId(provider_id.to_string()));
        }
        Ok(keyring::Entry::new(&self.service, provider_id)?)
    }

    /// Stores (or replaces) the token for `provider_id`.
    pub fn store(&self, provider_id: &str, token: &ProviderToken) -> Result<(), KeychainError> {
        self.entry(provider_id)?.set_password(token.expose())?;
        Ok(())
    }

    /// The token for `provider_id`, or `None` if there is none.
    pub fn load(&self, provider_id: &str) -> Result<Option<ProviderToken>, KeychainError> {
        match self.entry(provider_id)?.get_password() {
            Ok(s) => ProviderToken::new(s).map(Some),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the token; `false` if there was none.
    pub fn delete(&self, provider_id: &str) -> Result<bool, KeychainError> {
        match self.entry(provider_id)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The token to connect with: `HEARTH_PROVIDER_TOKEN` if set and non-empty, else the keychain's.
/// `Ok(None)`: no token anywhere (connect tokenless; the coordinator may mint one).
pub fn resolve_token(provider_id: &str) -> Result<Option<ResolvedToken>, KeychainError> {
    resolve_token_with(std::env::var(PROVIDER_TOKEN_ENV).ok(), &Keychain::new(), provider_id)
}

/// [`resolve_token`] with the environment value and keychain passed in.
pub fn resolve_token_with(
    env_value: Option<String>,
    keychain: &Keychain,
    provider_id: &str,
) -> Result<Option<ResolvedToken>, KeychainError> {
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        return Ok(Some(ResolvedToken { token: ProviderToken::new(v)?, source: TokenSource::Env }));
    }
    Ok(keychain.load(provider_id)?.map(|token| ResolvedToken { token, source: TokenSource::Keychain }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let t = ProviderToken::new("sk-very-secret-123").unwrap();
        let r = ResolvedToken { token: t.clone(), source: TokenSource::Env };
        for s in [format!("{t:?}"), format!("{r:?}"), format!("{r:#?}")] {
            assert!(!s.contains("very-secret"), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
        assert_eq!(t.expose(), "sk-very-secret-123");
    }

    #[test]
    fn tokens_must_fit_a_bearer_header() {
        assert!(ProviderToken::new("").is_err());
        assert!(ProviderToken::new("a b").is_err());
        assert!(ProviderToken::new("a\nb").is_err());
        assert!(ProviderToken::new("x".repeat(4097)).is_err());
        assert!(ProviderToken::new("abc.DEF-_~+/=").is_ok());
    }

    #[test]
    fn env_override_wins_without_touching_the_keychain() {
        // An invalid provider id would make any keychain access fail, so success proves the
        // keychain was not consulted.
        let r =
            resolve_token_with(Some("env-token".into()), &Keychain::new(), "not a safe id").unwrap().unwrap();
        assert_eq!(r.source, TokenSource::Env);
        assert_eq!(r.token.expose(), "env-token");
        assert!(matches!(
            resolve_token_with(Some(String::new()), &Keychain::new(), "not a safe id"),
            Err(KeychainError::InvalidProviderId(_))
        ));
    }

    #[test]
    fn the_real_service_name() {
        assert_eq!(Keychain::new().service(), "dev.hearth.provider");
    }
}
