//! IDX files written by the tests, and `bn-lab` run under an address-space limit: shared by
//! `datasets.rs` in the suite and by `tests/peak_rss.rs`, a binary of its own (each uses a
//! part).

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A fresh, empty directory unique to this process and call.
pub fn fresh_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bn-lab-datasets-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An IDX image file: the header for `n` images of `rows` x `cols`, then `pixels`.
pub fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        b.extend(d.to_be_bytes());
    }
    b.extend(pixels);
    b
}

/// An IDX label file holding `labels`.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = 0x0000_0801u32.to_be_bytes().to_vec();
    b.extend((labels.len() as u32).to_be_bytes());
    b.extend(labels);
    b
}

/// `bytes` gzipped.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// What `bn-lab ARGS` did, run under `sh -c 'ulimit -v KIB; exec ...'` with `env`.
#[cfg(target_os = "linux")]
pub struct Ran {
    pub code: Option<i32>,
    pub stderr: String,
    /// The child's peak resident set (`wait4`'s `ru_maxrss`), in bytes. Linux counts into it
    /// the peak of the process that started the child (an `exec` keeps the larger of the two),
    /// so it is the child's own only when the test process is small: `tests/peak_rss.rs`.
    pub max_rss: u64,
}

/// Run the binary with an address-space limit of `as_kib` KiB and wait for it with `wait4`,
/// for its own peak RSS; kill it and fail the test if it is still running after `deadline`.
#[cfg(target_os = "linux")]
pub fn run_bounded(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    as_kib: u64,
    deadline: std::time::Duration,
) -> Ran {
    let dir = fresh_dir(name);
    let err_path = dir.join("stderr");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {as_kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_bn-lab"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Reaped by wait4 below rather than Child::wait, for its resource usage.
    #[allow(clippy::zombie_processes)]
    let pid = cmd.spawn().unwrap().id() as libc::pid_t;
    let start = std::time::Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 is given valid pointers to
    // locals; the child is ours and reaped only here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break;
        }
        if start.elapsed() > deadline {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            panic!("bn-lab {args:?} still running after {deadline:?}: killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    Ran {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stderr,
        max_rss: usage.ru_maxrss as u64 * 1024,
    }
}
