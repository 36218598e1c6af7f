//! Turns a broken connection's transport error into a sentence a provider can act on.
//!
//! The raw errors are accurate but unhelpful: a link that died silently surfaces as whatever soft
//! error the kernel last recorded on the socket when `TCP_USER_TIMEOUT` gave up — `Connection
//! timed out`, or `Invalid argument` / `No route to host` when the local route itself vanished.

use std::io;
use std::time::Duration;

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::Error;

/// `doing` is what we were doing ("reading from", "writing to"); `user_timeout` is the socket's
/// `TCP_USER_TIMEOUT`, named in the message because it is how long the link was dead before we
/// gave up on it.
pub fn describe(e: &Error, doing: &str, user_timeout: Duration) -> String {
    let secs = user_timeout.as_secs();
    match e {
        Error::Io(io) => match (io.kind(), io.raw_os_error()) {
            (io::ErrorKind::TimedOut, _) => format!(
                "the link to the coordinator went dead: nothing we sent was acknowledged for {secs} s \
                 (network outage or a vanished coordinator; {io})"
            ),
            // EINVAL, EHOSTUNREACH, ENETUNREACH, ENETDOWN: the kernel could not route our packets at
            // all while retransmitting.
            (_, Some(22 | 113 | 101 | 100)) => format!(
                "the network path to the coordinator is gone: packets could not be routed for up to \
                 {secs} s (check the network connection; {io})"
            ),
            (io::ErrorKind::ConnectionReset, _) => {
                format!("the coordinator reset the connection while {doing} it ({io})")
            }
            // TLS reports a peer that vanished without close_notify this way.
            (io::ErrorKind::UnexpectedEof, _) => format!(
                "the connection to the coordinator ended abruptly, without a close frame (cut, or the \
                 coordinator died; {})",
                io.to_string().split(": https://").next().unwrap_or_default()
            ),
            (io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted, _) => {
                format!("the connection to the coordinator was closed under us while {doing} it ({io})")
            }
            _ => format!("{doing} the coordinator failed: {io}"),
        },
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the coordinator dropped the connection without a close frame".into()
        }
        Error::ConnectionClosed | Error::AlreadyClosed => "the connection was already closed".into(),
        other => format!("{doing} the coordinator failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(code: i32) -> Error {
        Error::Io(io::Error::from_raw_os_error(code))
    }

    #[test]
    fn a_silently_dead_link_names_the_timeout_and_the_likely_cause() {
        let t = Duration::from_secs(20);
        let timed_out = describe(&io(110), "reading from", t);
        assert!(timed_out.contains("went dead") && timed_out.contains("20 s"), "{timed_out}");
        // What a vanished local route leaves behind: not "Invalid argument" on its own.
        let no_route = describe(&io(22), "reading from", t);
        assert!(no_route.starts_with("the network path to the coordinator is gone"), "{no_route}");
        assert!(no_route.contains("check the network"), "{no_route}");
    }

    #[test]
    fn other_errors_keep_their_detail_and_say_what_we_were_doing() {
        let t = Duration::from_secs(20);
        let reset = describe(&io(104), "writing to", t);
        assert!(reset.contains("reset the connection while writing to it"), "{reset}");
        let eof = describe(
            &Error::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed connection: https://docs")),
            "reading from",
            t,
        );
        assert!(eof.contains("ended abruptly") && !eof.contains("https://"), "{eof}");
        let other = describe(&io(5), "reading from", t);
        assert!(other.starts_with("reading from the coordinator failed:"), "{other}");
    }
}
