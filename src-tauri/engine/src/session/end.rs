//! How a session ended ([`SessionEnd`]): what the handler reports when it stops serving, and what
//! the reconnect loop decides the next step from.

/// How a session ended, and so what the provider does next.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    /// Never got a session (connect or handshake failed).
    ConnectFailed { reason: String, permanent: bool },
    /// The v2 handshake could not complete on our side's checks (kid or suite mismatch, a leg not
    /// enabled, a rejection): a bug or a configuration mismatch, never a plaintext fallback.
    Refused { reason: String },
    /// The coordinator closed the session.
    Closed { code: Option<u16>, reason: String },
    /// The connection broke (transport error, write timeout, silence).
    Lost { reason: String },
    /// We drained and closed; reconnect after the fixed grace unless quitting.
    Drained { quitting: bool },
}
