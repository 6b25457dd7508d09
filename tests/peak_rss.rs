//! `bn-lab`'s own peak memory, in a binary of its own: `wait4` reports a child's peak resident
//! set as at least the peak of the process that started it (Linux keeps the larger across the
//! child's `exec`), so it is the child's only when the test process is small, and the suite's
//! process holds hundreds of MiB while its tests run.

#![warn(clippy::too_many_lines)] // as in src/: no test function over 100 lines either

#[path = "suite/idx_files.rs"]
mod idx_files;

use idx_files::{
    TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, fresh_dir, gzip, idx_images, idx_labels,
    run_bounded,
};

#[cfg(target_os = "linux")]
#[test]
fn idx_header_bomb_is_refused_before_its_data_is_read() {
    // A 1 MB gzip that inflates to a valid 2^30-pixel IDX file (16384 images of 256x256): its
    // header is valid and under every cap, and its data would take 8 GiB as f64. The 1024 gzip
    // members of 1 MiB of zeros each are the bytes a reader that read first would inflate.
    let dir = fresh_dir("bomb");
    let mut images = gzip(&idx_images(16384, 256, 256, &[]));
    let mib = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..1024 {
        images.extend_from_slice(&mib);
    }
    assert!(images.len() < 2 << 20, "{} bytes", images.len());
    std::fs::write(dir.join(format!("{TRAIN_IMAGES}.gz")), &images).unwrap();
    std::fs::write(dir.join(TRAIN_LABELS), idx_labels(&vec![0; 16384])).unwrap();
    std::fs::write(dir.join(TEST_IMAGES), idx_images(1, 256, 256, &[0; 65536])).unwrap();
    std::fs::write(dir.join(TEST_LABELS), idx_labels(&[0])).unwrap();
    let task = format!("mnist:{}", dir.display());
    let out = dir.join("out").display().to_string();
    // 2 GiB of address space: reading the data (1 GiB of bytes, then 8 GiB of f64) cannot
    // succeed in it, so a refusal that came after reading would not be this message.
    let ran = run_bounded(
        "bomb-run",
        &["train", "--task", &task, "--steps", "1", "--out", &out],
        &[("BN_LAB_MEMORY_LIMIT", "2G")],
        2 << 20,
        std::time::Duration::from_secs(60),
    );
    let err = ran.stderr.trim_end();
    eprintln!(
        "exit {:?}, peak RSS {} KiB: {err}",
        ran.code,
        ran.max_rss / 1024
    );
    assert_eq!(ran.code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The whole run is checked from the headers, the image set among its parts, before any
    // data is read; its pixels and classes are the set's, so no --d-in or --d-out is offered.
    assert!(err.starts_with("Error: this run needs about "), "{err}");
    assert!(
        err.contains("image set 8.0 GiB") && err.contains("only 2.0 GiB"),
        "{err}"
    );
    assert!(!err.contains("--d-in") && !err.contains("--d-out"), "{err}");
    // Far below the 1 GiB the data's bytes alone would take.
    assert!(ran.max_rss < 64 << 20, "peak RSS {} bytes", ran.max_rss);
    std::fs::remove_dir_all(dir).unwrap();
}
