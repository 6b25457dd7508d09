//! The largest value of every count and size bn-lab accepts, and the costs the memory
//! estimates of [`crate::memory`] are built from (constants only: the bottom layer). The
//! README's "Limits and errors" section lists the same numbers.
//!
//! The caps are far above any experiment a class runs, and low enough that every size
//! computed from them (`n_train + n_test`, `depth * width^2`, `steps * seeds`) fits in a
//! `usize` with room to spare, so no size arithmetic can overflow after validation.

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
/// Points per side of `landscape`'s slice grid (401^2 forward passes per arm).
pub const MAX_SLICE_GRID: usize = 401;
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
