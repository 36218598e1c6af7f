//! Any text a coordinator or a provider might send: decoding must return a message or a typed
//! error (never panic), and whatever decodes must survive an encode/decode round trip.
#![no_main]

use hearth_protocol::openai::ChatCompletionRequest;
use hearth_protocol::{decode_coordinator, decode_provider, encode};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = decode_coordinator(text, MAX) {
        assert_eq!(decode_coordinator(&encode(&m), usize::MAX).ok(), Some(m));
    } else if let Err(e) = decode_coordinator(text, MAX) {
        let _ = e.to_nak();
    }
    if let Ok(m) = decode_provider(text, MAX) {
        assert_eq!(decode_provider(&encode(&m), usize::MAX).ok(), Some(m.clone()));
        if let hearth_protocol::ProviderMessage::Hello(h) = m {
            let _ = h.validate();
        }
    }
    let _ = ChatCompletionRequest::parse(text);
});
