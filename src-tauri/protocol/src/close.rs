//! WebSocket close codes a coordinator uses, and what a provider should do after each.

/// 1001: what a provider sends when it closes after a drain.
pub const GOING_AWAY: u16 = 1001;
pub const BAD_FIRST_MESSAGE: u16 = 4000;
pub const INVALID_HELLO: u16 = 4001;
pub const UNKNOWN_PROVIDER_ID: u16 = 4002;
pub const TIER_UNSUPPORTED: u16 = 4003;
pub const VERSION_UNSUPPORTED: u16 = 4004;
pub const INVALID_TOKEN: u16 = 4005;
pub const PROVISIONAL_POOL_FULL: u16 = 4007;
pub const PROVISIONAL_RATE_LIMITED: u16 = 4008;
pub const BANNED: u16 = 4009;
pub const TIER2_ATTESTATION_FAILED: u16 = 4012;
pub const TIER2_KEY_EXCHANGE_FAILED: u16 = 4013;
pub const TOO_MANY_SOCKETS: u16 = 4429;

/// What to do after the coordinator closed the session with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterClose {
    /// Reconnect with the usual backoff.
    Retry,
    /// Stop reconnecting: nothing changes until the user acts (update, new token, new settings).
    Stop,
}

/// Retry vs. stop for a close code, and a sentence for the user.
pub fn advice(code: u16) -> (AfterClose, &'static str) {
    use AfterClose::*;
    match code {
        BAD_FIRST_MESSAGE => (Retry, "the coordinator did not understand our first message"),
        INVALID_HELLO => {
            (Stop, "the coordinator rejected our hello; check the model id and provider id in Settings")
        }
        UNKNOWN_PROVIDER_ID => (Stop, "the coordinator does not know this provider id; check it in Settings"),
        TIER_UNSUPPORTED => {
            (Stop, "the coordinator requires a tier or identity signature Hearth does not offer yet")
        }
        VERSION_UNSUPPORTED => (
            Stop,
            "the coordinator requires a newer provider protocol level than this Hearth announces \
                 (its binary_version); update Hearth, or set `binary_version` in Settings to a level \
                 this coordinator accepts",
        ),
        INVALID_TOKEN => (Stop, "the provider token was refused; paste a valid token in Settings"),
        PROVISIONAL_POOL_FULL => (Retry, "the coordinator's provisional pool is full; retrying later"),
        PROVISIONAL_RATE_LIMITED => (Retry, "the coordinator is rate-limiting new providers; retrying later"),
        BANNED => (Stop, "this provider was banned or rejected by the coordinator"),
        TIER2_ATTESTATION_FAILED => (Stop, "the coordinator requires attestation Hearth cannot provide"),
        // A bug or a settings mismatch; the provider stops after three in a row.
        TIER2_KEY_EXCHANGE_FAILED => (
            Retry,
            "the coordinator requires the encrypted (v2) session or refused its key exchange; set \
             `protocol` to auto or v2 in Settings",
        ),
        TOO_MANY_SOCKETS => (Retry, "the coordinator has too many connections; retrying later"),
        _ => (Retry, "the coordinator closed the session"),
    }
}
