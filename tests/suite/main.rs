//! The integration tests, one binary: each file of `tests/suite/` is a module, so the crate is
//! linked once instead of once per file. `tests/footprint.rs` and `tests/no_alloc.rs` stay
//! binaries of their own because their global allocators count the whole process, and
//! `tests/peak_rss.rs` because the kernel counts this process's peak memory into its children's.
//!
//! One process means shared state. Every test here keeps to these rules:
//! - the environment, the working directory and the rayon global pool are never changed in the
//!   process: a test that needs a variable or a directory runs the binary
//!   (`env!("CARGO_BIN_EXE_bn-lab")`) as a subprocess with `.env(...)` / `.current_dir(...)`,
//!   and thread counts go through a local `rayon::ThreadPool`;
//! - no signal is installed or sent in the process: signal tests send theirs to a child;
//! - each scratch directory ([`common::scratch`], [`common::scratch_dir`]) belongs to one test:
//!   a name that two tests ask for fails the second with both names.

#![warn(clippy::too_many_lines)] // as in src/: no test function over 100 lines either

mod common;

mod bad_input;
mod balduzzi;
mod browser;
mod classification;
mod cli;
mod datasets;
mod fixup;
mod fused_passes;
mod grad_norms;
mod gradcheck;
mod histograms;
mod ics;
mod idx_files;
mod known_answers;
mod landscape;
mod layers;
mod live_page;
mod live_page_blocks;
mod noisy_bn;
mod nonlinearity;
mod partial_output;
mod plot_fixes;
mod plot_grid;
mod reference_gradients;
mod reference_kernels;
mod registry;
mod reproduce;
mod resblocks;
mod resnet_grads;
mod resnet_input;
mod resnet_train;
mod roundtrip;
mod serve_api;
mod serve_stream;
mod server;
mod shattered;
mod shclaim;
mod shift;
mod sweep;
mod theory;
mod train;
mod warmup;
mod x_hat_recomputed;
