//! What bn-lab refuses before it starts: the largest value of every count, the cap on recorded
//! histories, and the memory a run will hold ([`Footprint`]), checked against what the machine
//! has. The README's "Limits and errors" section lists the same numbers.
//!
//! The caps are far above any experiment a class runs, and low enough that every size
//! computed from them (`n_train + n_test`, `depth * width^2`, `steps * seeds`) fits in a
//! `usize` with room to spare, so no size arithmetic can overflow after validation.

use serde::Serialize;

use crate::config::{ConfigError, human_bytes};

/// Units per hidden layer, input and output dimensions.
pub const MAX_WIDTH: usize = 1 << 20;
/// Hidden layers.
pub const MAX_DEPTH: usize = 100_000;
/// Samples per batch.
pub const MAX_BATCH: usize = 1 << 24;
/// Training and test samples, each.
pub const MAX_SAMPLES: usize = 1 << 26;
/// SGD steps of one run.
pub const MAX_STEPS: usize = 1_000_000;
/// Seeds repeated.
pub const MAX_SEEDS: usize = 1_000;
/// Points of one recorded history (evaluations, diagnostics, measurements): `steps / every + 1`.
pub const MAX_POINTS: usize = 10_000;
/// Values of a list flag that become panels or lines of one figure (`--lr`, `--depth`).
pub const MAX_PANELS: usize = 8;
/// Probe step sizes of `landscape`.
pub const MAX_PROBES: usize = 32;
/// Points per side of `landscape`'s slice grid.
pub use crate::experiment::landscape::MAX_SLICE_GRID;
/// Learning rates (`--lr`, `ics --sweep-lr`). The tests' rate that diverges at the first step
/// is 1e10; larger ones only put the losses nearer `f64::MAX`.
pub const MAX_LR: f64 = 1e10;
/// The std of the initial weights (`--init normal:STD`, `sweep --vary weight-scale --values`):
/// `normal:1e8` already overflows a deep network's forward pass, which is what such a run shows.
pub const MAX_WEIGHT_SCALE: f64 = 1e8;
/// `landscape --slice-span`, in multiples of each filter's norm (1 moves the weights by their
/// own size).
pub const MAX_SLICE_SPAN: f64 = 1e3;
/// `landscape --probe-steps`, in multiples of `--lr`.
pub const MAX_PROBE_MULTIPLE: f64 = 1e3;

/// Pixels of the largest figure any command draws with its lists at their caps.
pub const MAX_FIGURE_PIXELS: f64 = 32e6;

/// Bytes one recorded number costs at the peak: the value in the report (8, with room for a
/// vector's spare capacity), its copy in a plot series, and its text in the pretty-printed
/// JSON (about 40 bytes with indentation, held while the figures are drawn; the buffer grows
/// by doubling).
pub const BYTES_PER_RECORD: f64 = 16.0 + 16.0 + 2.0 * 40.0;

/// Bytes of one figure being drawn: an RGB bitmap of the largest figure, and its PNG encoding.
pub const FIGURE_BYTES: f64 = 2.0 * 3.0 * MAX_FIGURE_PIXELS;

/// The most figures a command draws.
pub const MAX_FIGURES: usize = 4;

/// Bytes of the figures being drawn: they are drawn side by side, as many at once as the
/// thread pool has threads (at most [`MAX_FIGURES`]), each [`FIGURE_BYTES`].
pub fn figures_bytes() -> f64 {
    FIGURE_BYTES * crate::parallel::side_by_side(MAX_FIGURES) as f64
}

/// The number of points a history recorded every `every` of `steps` steps keeps.
pub fn points(steps: usize, every: usize) -> usize {
    steps / every.max(1) + 1
}

/// Refuse a history of more than [`MAX_POINTS`] points: `every_field` must be at least
/// `steps / MAX_POINTS` (rounded up).
pub fn check_points(
    every_field: &'static str,
    steps_field: &'static str,
    steps: usize,
    every: usize,
) -> Result<(), ConfigError> {
    if points(steps, every) > MAX_POINTS {
        return Err(ConfigError::TooManyPoints {
            field: every_field,
            steps_field,
            steps,
            min: steps / MAX_POINTS + 1,
            got: every,
        });
    }
    Ok(())
}

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

    #[test]
    fn histories_are_capped() {
        assert!(check_points("every", "steps", 400, 10).is_ok());
        assert!(check_points("every", "steps", MAX_POINTS - 1, 1).is_ok());
        let e = check_points("every", "steps", 100_000_000, 1).unwrap_err();
        let min = 100_000_000 / MAX_POINTS + 1;
        assert!(points(100_000_000, min) <= MAX_POINTS);
        assert!(points(100_000_000, min - 1) > MAX_POINTS);
        assert!(e.to_string().contains(&format!("at least {min}")), "{e}");
    }
}
