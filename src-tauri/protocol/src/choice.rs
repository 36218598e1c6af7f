//! Which protocol a provider opens its sessions with: the `protocol` setting.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolChoice {
    /// v2, falling back to v1 only when a coordinator closes the initial `auth_request` as an
    /// unknown first message (remembered per coordinator URL).
    #[default]
    Auto,
    /// v2 only: a coordinator that cannot speak it is an error, never a plaintext session.
    V2,
    /// The plaintext v1 `hello` only.
    V1,
}

impl ProtocolChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::V2 => "v2",
            Self::V1 => "v1",
        }
    }
}

impl std::str::FromStr for ProtocolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "v2" | "2" => Ok(Self::V2),
            "v1" | "1" => Ok(Self::V1),
            other => Err(format!("protocol {other:?} is not one of auto, v2, v1")),
        }
    }
}
