//! The process's one llama.cpp: initialised on first use, its log routed into `tracing`, and what
//! it says about itself (which CPU code it was built with, for the bench and the logs).
//!
//! llama.cpp logs hundreds of lines while loading a model. They go to `tracing` at debug level
//! (warnings and errors at theirs), so they appear only when asked for. Errors are also kept per
//! thread, because a failed load returns only a null pointer: the loader turns the messages it
//! collected into the [`LoadError`](crate::LoadError) a person reads.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2 as sys;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The initialised backend, proof for llama-cpp-2's calls that llama.cpp is set up. The first
/// call installs the log callback, initialises llama.cpp and logs which CPU code runs.
pub fn backend() -> Result<&'static LlamaBackend, String> {
    BACKEND
        .get_or_init(|| {
            // SAFETY: `on_log` is a plain function that stays valid for the life of the process and
            // needs no user data.
            unsafe { sys::llama_log_set(Some(on_log), std::ptr::null_mut()) };
            let backend = LlamaBackend::init().map_err(|e| format!("llama.cpp did not start: {e}"))?;
            tracing::info!(cpu = ?cpu_variant(), system_info = ?system_info(), "llama.cpp ready");
            Ok(backend)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// llama.cpp's own summary of its compiled-in backends and their features, e.g.
/// `CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | …`.
pub fn system_info() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string that stays valid until the next
    // call; it is copied out at once.
    let ptr = unsafe { sys::llama_print_system_info() };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().trim_end_matches([' ', '|']).to_string()
}

/// The instruction-set extensions the CPU backend was compiled for, e.g. `AVX2 F16C FMA`, or
/// `baseline` when it uses none beyond the architecture's minimum (a plain x86-64 build: SSE2).
pub fn cpu_variant() -> String {
    variant_from_system_info(&system_info())
}

/// The CPU section of a system-info string, reduced to the ISA features that are on. llama.cpp's
/// build options (`REPACK`, `LLAMAFILE`, `OPENMP`…) are not instruction sets and are left out.
fn variant_from_system_info(info: &str) -> String {
    const NOT_ISA: &[&str] = &["LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE", "CPU_ALL_VARIANTS"];
    let mut in_cpu = false;
    let mut on = Vec::new();
    for item in info.split('|') {
        let mut item = item.trim();
        if let Some((backend, first)) = item.split_once(" : ") {
            in_cpu = backend.trim() == "CPU";
            item = first.trim();
        }
        if !in_cpu {
            continue;
        }
        if let Some((name, value)) = item.split_once('=') {
            let name = name.trim();
            if value.trim() == "1" && !NOT_ISA.contains(&name) {
                on.push(name.to_string());
            }
        }
    }
    if on.is_empty() {
        "baseline".into()
    } else {
        on.join(" ")
    }
}

thread_local! {
    /// llama.cpp's error messages on this thread since the last [`take_errors`].
    static ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The error messages llama.cpp logged on this thread since the last call, oldest first.
pub fn take_errors() -> Vec<String> {
    ERRORS.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

/// At most this many messages are kept per thread: a load that fails logs two or three.
const MAX_KEPT_ERRORS: usize = 16;

unsafe extern "C" fn on_log(level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated message that is valid for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = text.trim_end();
    if line.is_empty() {
        return;
    }
    match level {
        sys::GGML_LOG_LEVEL_ERROR => {
            tracing::error!(target: "llama.cpp", "{line}");
            ERRORS.with(|e| {
                let mut e = e.borrow_mut();
                if e.len() >= MAX_KEPT_ERRORS {
                    e.remove(0);
                }
                e.push(line.to_string());
            });
        }
        sys::GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama.cpp", "{line}"),
        _ => tracing::debug!(target: "llama.cpp", "{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::variant_from_system_info;

    #[test]
    fn the_cpu_variant_lists_the_isa_features_that_are_on() {
        let info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | \
                    LLAMAFILE = 1 | REPACK = 1 | ";
        assert_eq!(variant_from_system_info(info), "SSE3 SSSE3 AVX AVX2 F16C FMA");
        assert_eq!(variant_from_system_info("CPU : LLAMAFILE = 1 | REPACK = 1 | "), "baseline");
        let metal = "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 | REPACK = 1 |";
        assert_eq!(variant_from_system_info(metal), "NEON ARM_FMA DOTPROD");
    }
}
