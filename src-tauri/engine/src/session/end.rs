//! How a session ended ([`SessionEnd`]): what the handler reports when it stops serving, and what
//! the reconnect loop decides the next step from.

/// How a session ended, and so what the provider does next.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// Never got a session (connect or handshake failed).
    ConnectFailed { reason: String, permanent: bool },
    /// The coordinator closed the session.
    Closed { code: Option<u16>, reason: String },
    /// The connection broke (transport error, write timeout, silence).
    Lost { reason: String },
    /// We drained and closed; reconnect after the fixed grace unless quitting.
    Drained { quitting: bool },
}
