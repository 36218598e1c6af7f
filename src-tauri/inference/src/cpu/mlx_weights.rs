//! Reading an mlx-community safetensors checkpoint into dense f32 tensors.
//!
//! MLX's affine quantization stores, per linear (or embedding) `W[out, in]`:
//! `weight` — `u32[out, in * bits / 32]`, values packed least-significant bits first;
//! `scales`, `biases` — `[out, in / group_size]`; and `W[o, i] = scales[o, g] * q[o, i] + biases[o, g]`
//! with `g = i / group_size`. The CPU engine dequantizes once at load: exact (the oracle's logits
//! match to float rounding) and simple, at the cost of 4 bytes per parameter in memory.

use std::collections::HashSet;
use std::path::PathBuf;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::LoadError;
use crate::model_dir::{ModelDir, QuantSpec, SUPPORTED_BITS};

pub struct MlxWeights {
    st: MmapedSafetensors,
    names: HashSet<String>,
    dir: ModelDir,
}

impl MlxWeights {
    pub fn open(dir: &ModelDir) -> Result<Self, LoadError> {
        // SAFETY: the files are memory-mapped read-only for the duration of loading; like every
        // mmap-based loader we rely on nobody truncating model files while they load.
        let st = unsafe { MmapedSafetensors::multi(&dir.weight_files) }
            .map_err(|e| LoadError::Weights(format!("reading safetensors in {}: {e}", dir.path.display())))?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self { st, names, dir: dir.clone() })
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn missing(&self, name: &str) -> LoadError {
        LoadError::MissingFile {
            path: PathBuf::from(format!("{}#{name}", self.dir.path.display())),
            hint:
                "the weights lack this tensor; the checkpoint does not match its config.json's architecture"
                    .into(),
        }
    }

    /// A plain tensor as f32.
    pub fn plain(&self, name: &str) -> Result<Tensor, LoadError> {
        if !self.has(name) {
            return Err(self.missing(name));
        }
        Ok(self.st.load(name, &Device::Cpu)?.to_dtype(DType::F32)?)
    }

    pub fn plain_opt(&self, name: &str) -> Result<Option<Tensor>, LoadError> {
        if self.has(name) {
            self.plain(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `module.weight` as dense f32 `[out, in]`, dequantizing when `module.scales` is present.
    pub fn matrix(&self, module: &str) -> Result<Tensor, LoadError> {
        let wname = format!("{module}.weight");
        if !self.has(&wname) {
            return Err(self.missing(&wname));
        }
        let scales_name = format!("{module}.scales");
        if !self.has(&scales_name) {
            return self.plain(&wname);
        }
        let packed = self.st.load(&wname, &Device::Cpu)?;
        let scales = self.plain(&scales_name)?;
        let biases = self.plain(&format!("{module}.biases"))?;
        let spec =
            self.dir.config.quantization.as_ref().and_then(|q| q.for_module(module)).ok_or_else(|| {
                LoadError::UnsupportedQuantization(format!(
                    "{module} is quantized but config.json has no quantization settings for it"
                ))
            })?;
        dequantize(module, &packed, &scales, &biases, spec)
    }
}

/// Unpacks MLX affine-quantized weights to f32.
pub fn dequantize(
    module: &str,
    packed: &Tensor,
    scales: &Tensor,
    biases: &Tensor,
    spec: QuantSpec,
) -> Result<Tensor, LoadError> {
    let QuantSpec { group_size, bits } = spec;
    if !SUPPORTED_BITS.contains(&bits) {
        return Err(LoadError::UnsupportedQuantization(format!(
            "{module}: {bits}-bit weights (supported: {SUPPORTED_BITS:?})"
        )));
    }
    if packed.dtype() != DType::U32 {
        return Err(LoadError::Weights(format!(
            "{module}.weight: expected packed u32, found {:?}",
            packed.dtype()
        )));
    }
    let (out, packed_cols) = packed.dims2()?;
    let per_word = (32 / bits) as usize;
    let cols = packed_cols * per_word;
    let groups = cols / group_size;
    if !cols.is_multiple_of(group_size)
        || scales.dims2()? != (out, groups)
        || biases.dims2()? != (out, groups)
    {
        return Err(LoadError::Weights(format!(
            "{module}: packed shape {:?} with scales {:?} does not fit {bits}-bit groups of {group_size}",
            packed.dims(),
            scales.dims()
        )));
    }
    let words = packed.flatten_all()?.to_vec1::<u32>()?;
    let scales = scales.flatten_all()?.to_vec1::<f32>()?;
    let biases = biases.flatten_all()?.to_vec1::<f32>()?;
    let mask = (1u32 << bits) - 1;
    let mut w = vec![0f32; out * cols];
    for o in 0..out {
        let row = &words[o * packed_cols..(o + 1) * packed_cols];
        let dst = &mut w[o * cols..(o + 1) * cols];
        for (c, word) in row.iter().enumerate() {
            for k in 0..per_word {
                let i = c * per_word + k;
                let g = o * groups + i / group_size;
                let q = (word >> (k as u32 * bits)) & mask;
                dst[i] = scales[g] * q as f32 + biases[g];
            }
        }
    }
    Ok(Tensor::from_vec(w, (out, cols), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_low_nibble_first() {
        // One row, 8 values 0..7 packed in one word; group of 8 with scale 2, bias -1.
        let word: u32 = (0..8u32).map(|v| v << (4 * v)).sum();
        let packed = Tensor::from_vec(vec![word], (1, 1), &Device::Cpu).unwrap();
        let s = Tensor::from_vec(vec![2f32], (1, 1), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(vec![-1f32], (1, 1), &Device::Cpu).unwrap();
        let w = dequantize("m", &packed, &s, &b, QuantSpec { group_size: 8, bits: 4 }).unwrap();
        assert_eq!(w.to_vec2::<f32>().unwrap(), vec![vec![-1.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0]]);
    }

    #[test]
    fn rejects_unsupported_bits() {
        let packed = Tensor::from_vec(vec![0u32], (1, 1), &Device::Cpu).unwrap();
        let s = Tensor::from_vec(vec![1f32], (1, 1), &Device::Cpu).unwrap();
        let e = dequantize("m", &packed, &s, &s, QuantSpec { group_size: 8, bits: 3 }).unwrap_err();
        assert!(matches!(e, LoadError::UnsupportedQuantization(_)));
    }
}
