//! Probes whose readings a test sets, and a keep-awake that counts its holds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::probe::{ActivityProbe, AwakeGuard, KeepAwake, PowerProbe, Probes, ThermalProbe};
use crate::readings::{PowerReading, Readings, ThermalLevel};

/// One set of readings, changed by the test and read by the code under test.
#[derive(Clone, Default)]
pub struct FakeProbes {
    readings: Arc<Mutex<Option<Readings>>>,
    holds: Arc<AtomicUsize>,
    taken: Arc<AtomicUsize>,
}

impl FakeProbes {
    pub fn set(&self, readings: Readings) {
        *self.readings.lock().unwrap() = Some(readings);
    }

    pub fn update(&self, f: impl FnOnce(&mut Readings)) {
        let mut r = self.readings.lock().unwrap();
        let mut now = r.unwrap_or(Readings::UNKNOWN);
        f(&mut now);
        *r = Some(now);
    }

    fn now(&self) -> Readings {
        self.readings.lock().unwrap().unwrap_or(Readings::UNKNOWN)
    }

    /// Keep-awake holds held right now.
    pub fn holds(&self) -> usize {
        self.holds.load(Ordering::Acquire)
    }

    /// Keep-awake holds taken so far.
    pub fn holds_taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    pub fn probes(&self) -> Probes {
        let me = Arc::new(self.clone());
        Probes { power: me.clone(), thermal: me.clone(), activity: me.clone(), keep_awake: me }
    }
}

impl PowerProbe for FakeProbes {
    fn power(&self) -> PowerReading {
        self.now().power
    }
}

impl ThermalProbe for FakeProbes {
    fn thermal(&self) -> Option<ThermalLevel> {
        self.now().thermal
    }
}

impl ActivityProbe for FakeProbes {
    fn idle_for(&self) -> Option<Duration> {
        self.now().idle_for
    }
}

struct FakeHold(Arc<AtomicUsize>);

impl AwakeGuard for FakeHold {}

impl Drop for FakeHold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl KeepAwake for FakeProbes {
    fn hold(&self, _why: &str) -> Result<Box<dyn AwakeGuard>, String> {
        self.holds.fetch_add(1, Ordering::AcqRel);
        self.taken.fetch_add(1, Ordering::AcqRel);
        Ok(Box::new(FakeHold(self.holds.clone())))
    }
}
