//! Self-signed certificates for tests of `wss://` and `https://`: a pool serving TLS, a provider
//! trusting it through `--ca-file`, and a buyer client trusting it too.

use std::path::{Path, PathBuf};

/// A self-signed certificate and its key, as PEM files.
pub struct Certs {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// Writes `dir/cert.pem` and `dir/key.pem`, valid for `names` (host names and IP addresses).
    pub fn self_signed(dir: &Path, names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        Self { cert, key }
    }

    /// The certificate as a root a reqwest client can trust.
    pub fn root_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(&std::fs::read(&self.cert).unwrap()).unwrap()
    }

    /// An HTTP client that trusts this certificate, ignores proxy settings and keeps no idle
    /// connections (a restarted server must not be reached through a dead one).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(self.root_certificate())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    }
}
