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
            // Before llama.cpp runs any of its vector code: on a CPU without the instruction sets
            // it was built for, that code dies of SIGILL with no word said.
            let missing = missing_cpu_features(&system_info(), cpu_has);
            if !missing.is_empty() {
                return Err(format!(
                    "this build of llama.cpp needs CPU features this machine lacks ({}); it was built for {}. \
                     Use a Hearth build for this CPU, or the cpu engine with an MLX-format model directory",
                    missing.join(", "),
                    cpu_variant()
                ));
            }
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

/// The instruction sets in llama.cpp's system info that this CPU does not have. `has` answers for
/// one feature name (`None`: a name not checked here, e.g. a build option).
fn missing_cpu_features(info: &str, has: impl Fn(&str) -> Option<bool>) -> Vec<String> {
    let variant = variant_from_system_info(info);
    if variant == "baseline" {
        return Vec::new();
    }
    variant.split(' ').filter(|f| has(f) == Some(false)).map(str::to_string).collect()
}

/// Whether this CPU has the feature llama.cpp's system info names.
fn cpu_has(name: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        Some(match name {
            "SSE3" => std::arch::is_x86_feature_detected!("sse3"),
            "SSSE3" => std::arch::is_x86_feature_detected!("ssse3"),
            "AVX" => std::arch::is_x86_feature_detected!("avx"),
            "AVX2" => std::arch::is_x86_feature_detected!("avx2"),
            "F16C" => std::arch::is_x86_feature_detected!("f16c"),
            "FMA" => std::arch::is_x86_feature_detected!("fma"),
            "BMI2" => std::arch::is_x86_feature_detected!("bmi2"),
            "AVX_VNNI" => std::arch::is_x86_feature_detected!("avxvnni"),
            "AVX512" => std::arch::is_x86_feature_detected!("avx512f"),
            "AVX512_VBMI" => std::arch::is_x86_feature_detected!("avx512vbmi"),
            "AVX512_VNNI" => std::arch::is_x86_feature_detected!("avx512vnni"),
            "AVX512_BF16" => std::arch::is_x86_feature_detected!("avx512bf16"),
            _ => return None,
        })
    }
    #[cfg(target_arch = "aarch64")]
    {
        Some(match name {
            "NEON" => std::arch::is_aarch64_feature_detected!("neon"),
            "DOTPROD" => std::arch::is_aarch64_feature_detected!("dotprod"),
            "MATMUL_INT8" => std::arch::is_aarch64_feature_detected!("i8mm"),
            "SVE" => std::arch::is_aarch64_feature_detected!("sve"),
            "FP16_VA" => std::arch::is_aarch64_feature_detected!("fp16"),
            _ => return None,
        })
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = name;
        None
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
    use super::{cpu_has, missing_cpu_features, system_info, variant_from_system_info};

    #[test]
    fn the_cpu_variant_lists_the_isa_features_that_are_on() {
        let info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | \
                    LLAMAFILE = 1 | REPACK = 1 | ";
        assert_eq!(variant_from_system_info(info), "SSE3 SSSE3 AVX AVX2 F16C FMA");
        assert_eq!(variant_from_system_info("CPU : LLAMAFILE = 1 | REPACK = 1 | "), "baseline");
        let metal = "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 | REPACK = 1 |";
        assert_eq!(variant_from_system_info(metal), "NEON ARM_FMA DOTPROD");
    }

    #[test]
    fn a_cpu_without_the_built_for_features_is_named_before_llama_cpp_runs() {
        let info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | \
                    LLAMAFILE = 1 | REPACK = 1 | ";
        // An Ivy Bridge: AVX without AVX2, FMA or BMI2.
        let ivy = |f: &str| Some(!matches!(f, "AVX2" | "FMA" | "BMI2"));
        assert_eq!(missing_cpu_features(info, ivy), ["AVX2", "FMA", "BMI2"]);
        assert!(missing_cpu_features(info, |_| Some(true)).is_empty());
        assert!(missing_cpu_features(info, |_| None).is_empty(), "names not checked are not missing");
        assert!(missing_cpu_features("CPU : REPACK = 1 |", |_| Some(false)).is_empty(), "baseline");
    }

    #[test]
    fn this_machine_runs_the_build_it_has() {
        assert_eq!(missing_cpu_features(&system_info(), cpu_has), Vec::<String>::new());
    }
}
