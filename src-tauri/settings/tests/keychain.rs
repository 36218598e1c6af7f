//! The provider token against a REAL keychain backend.
//!
//! On Linux that is the kernel's keyutils. Run it in a fresh session keyring:
//!
//! ```text
//! keyctl session - cargo test -p hearth-settings --test keychain
//! ```
//!
//! (`apt-get install keyutils` provides `keyctl`.) Where no backend is reachable (e.g. a container
//! whose seccomp profile blocks the keyctl syscalls) the test prints a loud SKIPPED banner and
//! passes — unless `HEARTH_REQUIRE_KEYCHAIN=1`, which CI sets so a missing backend fails the build.

use hearth_settings::{resolve_token_with, Keychain, KeychainError, ProviderToken, TokenSource};

/// Linux only: a process without a session keyring of its own falls back to the shared
/// `_uid_ses.<uid>` keyring, where keyring's keyutils store can add a key but not find it again
/// (so a probe would only leave litter). `keyctl session -` gives the test its own.
fn linux_session_problem() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let out = std::process::Command::new("keyctl").args(["rdescribe", "@s"]).output().ok()?;
    let desc = String::from_utf8_lossy(&out.stdout);
    let name = desc.trim().rsplit(';').next().unwrap_or_default().to_string();
    name.starts_with("_uid_ses.")
        .then(|| format!("the process has no session keyring of its own (only {name})"))
}

fn skip_or_fail(why: &str) {
    let msg = format!(
        "\n************************************************************************\n\
         *** SKIPPED keychain round trip: no keychain backend reachable:\n\
         ***   {why}\n\
         *** On Linux run: keyctl session - cargo test -p hearth-settings --test keychain\n\
         ************************************************************************\n"
    );
    if std::env::var("HEARTH_REQUIRE_KEYCHAIN").is_ok_and(|v| v == "1") {
        panic!("HEARTH_REQUIRE_KEYCHAIN=1 but {msg}");
    }
    eprintln!("{msg}");
}

/// Returns `false` (after saying why, loudly) when the test should be skipped.
fn backend_reachable(kc: &Keychain, probe_id: &str) -> bool {
    if let Some(why) = linux_session_problem() {
        skip_or_fail(&why);
        return false;
    }
    let probe = ProviderToken::new("probe-token").unwrap();
    // keyring's mock store (no backend compiled in) "forgets" across entries: a token that does
    // not read back means no backend either.
    let result =
        kc.store(probe_id, &probe).and_then(|()| kc.load(probe_id)).map(|got| got.as_ref() == Some(&probe));
    // Clean up whatever happened above.
    let cleanup = kc.delete(probe_id);
    let result = result.and_then(|ok| cleanup.map(|_| ok));
    let why = match result {
        Ok(true) => return true,
        Ok(false) => "a stored token did not read back (mock/no persistent store)".to_string(),
        Err(e) => e.to_string(),
    };
    skip_or_fail(&why);
    false
}

#[test]
fn provider_token_round_trip_in_the_real_keychain() {
    // The real service name; a unique account, so a developer's real token is never touched.
    let kc = Keychain::new();
    let id = format!("hearth-test-{}", std::process::id());
    if !backend_reachable(&kc, &format!("{id}-probe")) {
        return;
    }

    assert_eq!(kc.load(&id).unwrap(), None);
    let t1 = ProviderToken::new("tok-one-abc").unwrap();
    kc.store(&id, &t1).unwrap();
    // A fresh handle reads it back (a real store, not an in-process cache).
    assert_eq!(Keychain::new().load(&id).unwrap(), Some(t1));

    #[cfg(target_os = "linux")]
    {
        // And the kernel really holds it, under the service/account we chose.
        let out = std::process::Command::new("keyctl").args(["show", "@s"]).output();
        if let Ok(out) = out {
            let listing = String::from_utf8_lossy(&out.stdout);
            assert!(
                listing.contains(&id) && listing.contains("dev.hearth.provider"),
                "keyctl show @s does not list the entry:\n{listing}"
            );
        }
    }

    let t2 = ProviderToken::new("tok-two-xyz").unwrap();
    kc.store(&id, &t2).unwrap();
    assert_eq!(kc.load(&id).unwrap(), Some(t2.clone()));

    // The env override wins; without it the keychain's token is used.
    let r = resolve_token_with(Some("from-env".into()), &kc, &id).unwrap().unwrap();
    assert_eq!((r.source, r.token.expose()), (TokenSource::Env, "from-env"));
    let r = resolve_token_with(None, &kc, &id).unwrap().unwrap();
    assert_eq!((r.source, r.token), (TokenSource::Keychain, t2));

    assert!(kc.delete(&id).unwrap());
    assert_eq!(kc.load(&id).unwrap(), None);
    assert!(!kc.delete(&id).unwrap());
    assert!(resolve_token_with(None, &kc, &id).unwrap().is_none());
}

#[test]
fn unsafe_provider_ids_never_reach_the_keychain() {
    let kc = Keychain::new();
    let t = ProviderToken::new("x").unwrap();
    assert!(matches!(kc.store("a/b", &t), Err(KeychainError::InvalidProviderId(_))));
    assert!(matches!(kc.load(""), Err(KeychainError::InvalidProviderId(_))));
}
