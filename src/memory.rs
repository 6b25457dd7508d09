//! What a run holds in memory, estimated before it starts, and what the machine has: a
//! [`Footprint`] by part (networks, data, records, figures), the estimates of one network
//! ([`NetConfig::memory_estimate_bytes`]) and one data set ([`DataSpec::bytes`]), and
//! [`memory_limit_bytes`] (`BN_LAB_MEMORY_LIMIT`, else the memory available). A run whose
//! footprint exceeds it is refused before any work.

use serde::Serialize;

use crate::config::{ConfigError, NormKind, Placement, human_bytes};
use crate::limits::{BYTES_PER_RECORD, figures_bytes};
use crate::spec::{DataSpec, NetConfig, NetSpec};

/// What a run holds at its peak, by part, in bytes (computed in `f64`, so absurd sizes do not
/// overflow). Each part names the config fields that shrink it, for the refusal's hint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// `networks`, `data`, `records`, ...
    pub what: &'static str,
    pub bytes: f64,
    /// Config fields whose reduction shrinks this part.
    #[serde(skip)]
    pub reduce: &'static [&'static str],
    /// Already in memory when the footprint is checked (a cached image set): the memory
    /// available no longer includes it, so [`Footprint::check`] adds it back.
    #[serde(skip)]
    pub held: bool,
}

impl Footprint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a part (parts with the same name add up).
    pub fn add(mut self, what: &'static str, bytes: f64, reduce: &'static [&'static str]) -> Self {
        match self.parts.iter_mut().find(|p| p.what == what) {
            Some(p) => p.bytes += bytes,
            None => self.parts.push(Part {
                what,
                bytes,
                reduce,
                held: false,
            }),
        }
        self
    }

    /// Add a part the process already holds (see [`Part::held`]); no field shrinks it.
    pub fn held(mut self, what: &'static str, bytes: f64) -> Self {
        self.parts.push(Part {
            what,
            bytes,
            reduce: &[],
            held: true,
        });
        self
    }

    /// `n` recorded numbers, at [`BYTES_PER_RECORD`] each.
    pub fn records(self, n: f64, reduce: &'static [&'static str]) -> Self {
        self.add("records", n * BYTES_PER_RECORD, reduce)
    }

    /// The figures drawn at the end (side by side, see [`figures_bytes`]).
    pub fn figures(self) -> Self {
        self.add("figures", figures_bytes(), &[])
    }

    pub fn total(&self) -> f64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// The largest part.
    pub fn largest(&self) -> Option<&Part> {
        self.parts.iter().max_by(|a, b| a.bytes.total_cmp(&b.bytes))
    }

    /// Refuse a run that needs more than [`memory_limit_bytes`]; when that is the memory
    /// available rather than `BN_LAB_MEMORY_LIMIT`, the parts already held count as available
    /// too (they are in the total, and no longer in what the machine has).
    pub fn check(&self) -> Result<(), ConfigError> {
        let held: f64 = self.parts.iter().filter(|p| p.held).map(|p| p.bytes).sum();
        let have = match memory_limit_env() {
            Some(limit) => limit,
            None => available_memory_bytes() as f64 + held,
        };
        self.check_against(have)
    }

    /// Refuse a run that needs more than `have` bytes (or whose estimate is not a number).
    pub fn check_against(&self, have: f64) -> Result<(), ConfigError> {
        let need = self.total();
        if need.is_finite() && need <= have {
            return Ok(());
        }
        let mut parts: Vec<&Part> = self.parts.iter().filter(|p| p.bytes > 0.0).collect();
        parts.sort_by(|a, b| b.bytes.total_cmp(&a.bytes));
        let detail: Vec<String> = parts
            .iter()
            .map(|p| format!("{} {}", p.what, human_bytes(p.bytes)))
            .collect();
        Err(ConfigError::TooMuchMemory {
            fields: self.largest().map_or(&[], |p| p.reduce),
            need: format!("{} ({})", human_bytes(need), detail.join(", ")),
            have: human_bytes(have),
        })
    }
}

/// The memory a run may use: `BN_LAB_MEMORY_LIMIT` (bytes, or with a `K`/`M`/`G` suffix for
/// KiB/MiB/GiB) when set, else what the machine has available ([`available_memory_bytes`]).
pub fn memory_limit_bytes() -> f64 {
    memory_limit_env().unwrap_or_else(|| available_memory_bytes() as f64)
}

/// `BN_LAB_MEMORY_LIMIT` in bytes, if set to a valid size.
fn memory_limit_env() -> Option<f64> {
    std::env::var("BN_LAB_MEMORY_LIMIT")
        .ok()
        .and_then(|v| parse_bytes(&v))
}

/// `"512M"` -> `536870912`; `None` for anything else than a non-negative number with an
/// optional K, M or G.
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1024.0),
        (i, 'M' | 'm') => (&s[..i], 1024.0 * 1024.0),
        (i, 'G' | 'g') => (&s[..i], 1024.0 * 1024.0 * 1024.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// Memory this process may still use: `MemAvailable` from `/proc/meminfo`, or 16 GiB where
/// that cannot be read (non-Linux systems).
pub fn available_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                        .map(|kb| kb * 1024)
                })
        })
        .unwrap_or(16 << 30)
}

impl NetConfig {
    /// Bytes the model holds for one forward+backward on `batch` samples in a float of
    /// `dtype_bytes` bytes: parameters and their gradients, BN running statistics, the cached
    /// activations of every block, the gradient scratch buffers, and each block's fixed cost
    /// (its struct and the small allocations of its buffers). Computed in `f64` so absurd sizes
    /// do not overflow.
    pub fn memory_estimate_bytes(&self, batch: usize, dtype_bytes: usize) -> f64 {
        let (b, w, din, dout) = (
            batch as f64,
            self.width as f64,
            self.d_in as f64,
            self.d_out as f64,
        );
        // Layers with a matrix (a standard block has two, after a stem), and what a standard
        // block keeps beyond its layers: the stream `h'` (a preact block without a gain writes
        // it over its second layer's output), and a preact block's first normaliser's `a` (and
        // `x_hat` with LayerNorm).
        let layers = self.layers() as f64;
        let units = if self.block.is_some() {
            self.depth as f64
        } else {
            0.0
        };
        let preact = self.block == Some(crate::spec::StdBlock::Preact);
        let mut params = self.param_count();
        let mut per_block_acts = 1.0; // activation output a_l
        // the stream h'
        let mut per_unit_acts = if preact && !self.has_gain() { 0.0 } else { 1.0 };
        let post_affine = self
            .norm
            .is_some_and(|bn| bn.affine && bn.placement == Placement::Post);
        if let Some(bn) = &self.norm {
            let norms = layers + if preact { units } else { 0.0 };
            if bn.kind == NormKind::Batch {
                params += norms * 2.0 * w; // running mean, running var
            }
            per_block_acts += 1.0; // x_hat
        }
        if preact {
            // The first normaliser's `a`, and its `x_hat` with LayerNorm (BatchNorm recomputes
            // it from the stream).
            per_unit_acts += if self.norm.is_some_and(|n| n.kind == NormKind::Batch) {
                1.0
            } else {
                per_block_acts
            };
        }
        if self.residual || post_affine {
            // h_l in a buffer of its own: h_{l-1} + branch, or gamma x_hat + beta after the activation.
            per_block_acts += 1.0;
        }
        let acts = (layers * per_block_acts + units * per_unit_acts) * b * w;
        let io = 3.0 * b * din + 3.0 * b * dout; // x, y, dx; o, d_o, targets
        // dh, dh_next, dz; a standard block's branch gradients dy and mid.
        let scratch = if units > 0.0 { 5.0 } else { 3.0 } * b * w;
        // Weights are drawn in f64 one matrix at a time; matrix products pack their operands.
        let widest = w * w.max(din).max(dout);
        (2.0 * params + acts + io + scratch) * dtype_bytes as f64
            + (layers + 2.0 * units) * BLOCK_OVERHEAD_BYTES
            + 8.0 * widest
            + PACKING_BYTES
    }

    /// The networks part of a footprint: `copies` of this network alive at once, each on
    /// `batch` samples.
    pub fn footprint(
        &self,
        fp: Footprint,
        batch: usize,
        dtype_bytes: usize,
        copies: usize,
    ) -> Footprint {
        fp.add(
            "networks",
            copies as f64 * self.memory_estimate_bytes(batch, dtype_bytes),
            &["depth", "width", "batch"],
        )
    }

    /// Refuse a network whose memory estimate on `batch` samples exceeds what this machine has.
    pub fn check_memory(&self, batch: usize, dtype_bytes: usize) -> Result<(), ConfigError> {
        self.footprint(Footprint::new(), batch, dtype_bytes, 1)
            .check()
    }
}

/// The packing buffers of one matrix product (`matrixmultiply`'s, with room to spare).
const PACKING_BYTES: f64 = 4.0 * 1024.0 * 1024.0;

/// The fixed cost of one hidden block beyond its `batch x width` buffers: the struct with its
/// array headers and the per-layer records of a forward/backward (an upper bound of both
/// dtypes, plus the allocator's minimum for each of its small buffers).
const BLOCK_OVERHEAD_BYTES: f64 =
    (std::mem::size_of::<crate::model::Block<f64>>() + 16 * 32 + 64) as f64;

impl DataSpec {
    /// Bytes one data set holds at its peak: drawn in f64 as one `(n, d_in + d_out)` set
    /// (with the linear task's teacher) and split into copies of `float_bytes` per value.
    pub fn bytes(&self, d_in: usize, d_out: usize, float_bytes: usize) -> f64 {
        let n = self.n_train as f64 + self.n_test as f64;
        let d = d_in as f64 + d_out as f64;
        n * d * (8.0 + 2.0 * float_bytes as f64) + 8.0 * d_in as f64 * (d_out as f64 + 2.0)
    }

    /// Bytes of the least-squares linear fit the training commands compare with: the design
    /// matrix with its bias column and targets in f64 for one block of at most
    /// [`crate::train::LINEAR_FIT_ROWS`] rows (the larger split's), its Gram matrix and
    /// right-hand side.
    pub fn linear_fit_bytes(&self, d_in: usize, d_out: usize) -> f64 {
        let n = self
            .n_train
            .max(self.n_test)
            .min(crate::train::LINEAR_FIT_ROWS) as f64;
        let k = d_in as f64 + 1.0;
        8.0 * (2.0 * n * k + 2.0 * n * d_out as f64 + 2.0 * k * k + 2.0 * k * d_out as f64)
    }

    /// The data part of a footprint: `copies` data sets alive at once, a sample order for each
    /// of `runs` runs training at once, and, with `linear_fit`, the fit. An image task adds the
    /// whole image set, which the process holds from validation on however few of its images
    /// the run takes ([`crate::data::Task::images`]; no flag shrinks it), and names no `d_in` or `d_out` to
    /// reduce.
    pub fn footprint(
        &self,
        fp: Footprint,
        net: &NetSpec,
        copies: usize,
        runs: usize,
        linear_fit: bool,
    ) -> Footprint {
        // An image task's d_in and d_out are its pixels and classes, which no flag changes.
        let (data_fields, fit_fields): (&'static [&'static str], &'static [&'static str]) =
            if self.task.is_classification() {
                (&["n_train", "n_test"], &["n_train", "n_test"])
            } else {
                (
                    &["n_train", "n_test", "d_in", "d_out"],
                    &["d_in", "n_train", "n_test"],
                )
            };
        let set = self.bytes(net.d_in, net.d_out, net.dtype.bytes());
        let orders = 8.0 * self.n_train as f64 * runs as f64;
        let mut fp = fp.add("data", copies as f64 * set + orders, data_fields);
        // Validation read the set's headers (an unreadable one was refused there); the set is
        // read once the run is checked, or is already in memory (an earlier run of this process).
        if let Ok(Some(shape)) = self.task.shape() {
            fp = if self.task.is_loaded() {
                fp.held("image set", shape.bytes())
            } else {
                fp.add("image set", shape.bytes(), &[])
            };
        }
        if linear_fit {
            fp.add(
                "linear fit",
                self.linear_fit_bytes(net.d_in, net.d_out),
                fit_fields,
            )
        } else {
            fp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_parse_with_suffixes() {
        assert_eq!(parse_bytes("1024"), Some(1024.0));
        assert_eq!(parse_bytes("2K"), Some(2048.0));
        assert_eq!(parse_bytes("1.5G"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn a_footprint_over_the_limit_names_its_largest_part() {
        let f = Footprint::new()
            .add("data", 3e9, &["n_train", "n_test"])
            .add("networks", 1e6, &["width"]);
        assert!(f.check_against(4e9).is_ok());
        let e = f.check_against(1e9).unwrap_err();
        assert_eq!(e.field(), "n_train");
        let msg = e.to_string();
        assert!(msg.contains("data 2.8 GiB, networks 976.6 KiB"), "{msg}");
        assert!(msg.contains("reduce n_train or n_test"), "{msg}");
    }

    #[test]
    fn an_infinite_estimate_is_refused() {
        let f = Footprint::new().add("records", f64::INFINITY, &["steps"]);
        assert!(f.check_against(f64::MAX).is_err());
    }
}
