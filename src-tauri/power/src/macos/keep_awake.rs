//! Keep-awake as an IOKit power assertion that prevents idle sleep (the display may still sleep).

use objc2_core_foundation::CFString;
use objc2_io_kit::{
    kIOPMAssertionLevelOn, kIOReturnSuccess, IOPMAssertionCreateWithName, IOPMAssertionID,
    IOPMAssertionRelease,
};

use crate::probe::{AwakeGuard, KeepAwake};

/// `kIOPMAssertPreventUserIdleSystemSleep`, a `CFSTR` macro in C and so not in the crate.
const PREVENT_IDLE_SLEEP: &str = "PreventUserIdleSystemSleep";
/// IOKit rejects longer assertion names.
const MAX_NAME_CHARS: usize = 128;

pub(crate) struct PowerAssertion;

/// Releasing the assertion is what lets the Mac sleep again; macOS also drops it if Hearth exits.
struct Assertion(IOPMAssertionID);

impl AwakeGuard for Assertion {}

impl Drop for Assertion {
    fn drop(&mut self) {
        let rc = IOPMAssertionRelease(self.0);
        if rc != kIOReturnSuccess {
            tracing::warn!(rc, "macOS did not release Hearth's power assertion");
        }
    }
}

impl KeepAwake for PowerAssertion {
    /// `why` shows in `pmset -g assertions`, after "Hearth: ".
    fn hold(&self, why: &str) -> Result<Box<dyn AwakeGuard>, String> {
        let kind = CFString::from_static_str(PREVENT_IDLE_SLEEP);
        let name: String = format!("Hearth: {why}").chars().take(MAX_NAME_CHARS).collect();
        let name = CFString::from_str(&name);
        let mut id: IOPMAssertionID = 0;
        // SAFETY: both strings are live CFStrings for the call, and `id` is a valid place for the
        // new assertion's id.
        let rc = unsafe {
            IOPMAssertionCreateWithName(Some(&*kind), kIOPMAssertionLevelOn, Some(&*name), &mut id)
        };
        if rc != kIOReturnSuccess {
            return Err(format!(
                "macOS refused the power assertion (IOReturn {rc:#x}): this Mac may sleep while serving"
            ));
        }
        Ok(Box::new(Assertion(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_can_be_taken_and_dropped_twice_over() {
        let first = PowerAssertion.hold("hearth-power test").expect("a power assertion");
        let second = PowerAssertion.hold(&"a very long reason ".repeat(20)).expect("a long-named one");
        drop(first);
        drop(second);
        drop(PowerAssertion.hold("again").expect("a new one after release"));
    }
}
