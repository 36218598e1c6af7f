//! How big a gguf engine's llama.cpp context is: the context each job gets and how many jobs
//! share the model. llama.cpp allocates the whole KV cache up front (unlike the cpu engine's,
//! which grows), so both are chosen before loading, from the file's header and this machine's RAM.

/// The KV cache one job may fill by default, at llama.cpp's f16: the context is the model's own,
/// cut down until its cache fits this. A 128k-token context of an 8B model would take 16 GiB.
const KV_BUDGET_PER_SLOT_BYTES: u64 = 1 << 30;

/// Contexts are whole multiples of this (llama.cpp pads to 256 anyway).
const CONTEXT_STEP: usize = 256;

/// The most slots chosen on their own: past four, two cores gain little aggregate speed and each
/// job gets slower (llama-server's default is four as well). More can be asked for.
const MAX_AUTO_SLOTS: usize = 4;

/// The share of RAM the weights plus every slot's cache may take when choosing slots: the Mac is
/// also someone's computer.
const RAM_SHARE: f64 = 0.5;

/// The context a job gets: what the spec asks for (at most the model's), else the model's own
/// cut to [`KV_BUDGET_PER_SLOT_BYTES`] of f16 cache.
pub fn context_size(trained: usize, kv_bytes_per_token_f32: u64, asked: Option<usize>) -> usize {
    let trained = if trained == 0 { 4096 } else { trained };
    if let Some(n) = asked {
        return n.clamp(1, trained);
    }
    let fits = (KV_BUDGET_PER_SLOT_BYTES / f16_bytes(kv_bytes_per_token_f32)) as usize;
    if fits >= trained {
        return trained;
    }
    (fits / CONTEXT_STEP * CONTEXT_STEP).max(CONTEXT_STEP.min(trained))
}

/// Slots when nobody said: as many as fit half the RAM beside the weights, each with a full
/// `context` of cache, from one to [`MAX_AUTO_SLOTS`]. Unknown RAM means one.
pub fn auto_slots(
    ram_bytes: Option<u64>,
    model_bytes: u64,
    context: usize,
    kv_bytes_per_token_f32: u64,
) -> usize {
    let Some(ram) = ram_bytes else { return 1 };
    let room = (ram as f64 * RAM_SHARE) as u64;
    let per_slot = f16_bytes(kv_bytes_per_token_f32).saturating_mul(context as u64).max(1);
    let fit = room.saturating_sub(model_bytes) / per_slot;
    (fit as usize).clamp(1, MAX_AUTO_SLOTS)
}

/// The header's per-token cache size is counted at f32; llama.cpp keeps it at f16.
fn f16_bytes(kv_bytes_per_token_f32: u64) -> u64 {
    (kv_bytes_per_token_f32 / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_context_fits_the_kv_budget_unless_asked() {
        // Gemma 3 270M: 18 layers × 1 KV head × (256 + 256) × 4 bytes = 36 KiB per token at f32.
        assert_eq!(context_size(32_768, 36_864, None), 32_768);
        // Llama 3.1 8B: 32 × 8 × 256 × 4 = 256 KiB per token: 128k does not fit 1 GiB; 8k does.
        assert_eq!(context_size(131_072, 262_144, None), 8192);
        assert_eq!(context_size(131_072, 262_144, Some(100_000)), 100_000);
        assert_eq!(context_size(2048, 262_144, Some(100_000)), 2048);
        assert_eq!(context_size(0, 0, None), 4096);
    }

    #[test]
    fn slots_follow_the_ram_left_beside_the_weights() {
        // Gemma 3 270M (253 MB, 576 MiB of cache per 32k slot) on 24 GiB: the cap of four.
        assert_eq!(auto_slots(Some(24 * GIB), 253_000_000, 32_768, 36_864), 4);
        // Llama 3.1 8B Q4_K_M (4.9 GB, 1 GiB per 8k slot): 16 GiB gives 8 GiB, room for three.
        assert_eq!(auto_slots(Some(16 * GIB), 4_920_000_000, 8192, 262_144), 3);
        // …and 8 GiB gives 4 GiB, less than the weights: still one, the provider still serves.
        assert_eq!(auto_slots(Some(8 * GIB), 4_920_000_000, 8192, 262_144), 1);
        assert_eq!(auto_slots(None, 1, 1, 1), 1);
    }
}
