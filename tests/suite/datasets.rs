//! Real image data: the shipped digits and its fixed stratified split, standardisation with the
//! training statistics, one-hot targets, and MNIST-format IDX files (plain and gzipped) written
//! here, read back exactly, and refused with one line naming the file when they are wrong.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::idx_files::{
    TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, fresh_dir, gzip, idx_images, idx_labels,
    run_bounded,
};
use bn_lab::data::images::{
    DIGITS_TEST, DataError, ImageSet, digits, one_hot, read_idx_dir, standardise,
};
use flate2::read::GzDecoder;
use ndarray::Array2;

// ---------------------------------------------------------------------------------------------
// digits

/// The whole shipped file read independently of the crate: (64 pixels, label) per row.
fn digits_file_rows() -> Vec<(Vec<u8>, u8)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/data/digits.csv.gz");
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| {
            let v: Vec<u8> = l.split(',').map(|f| f.parse().unwrap()).collect();
            (v[..64].to_vec(), v[64])
        })
        .collect()
}

fn rows_of(x: &Array2<f64>, labels: &[u8]) -> Vec<(Vec<u8>, u8)> {
    x.rows()
        .into_iter()
        .zip(labels)
        .map(|(r, &l)| (r.iter().map(|&p| p as u8).collect(), l))
        .collect()
}

fn class_counts(labels: &[u8]) -> [usize; 10] {
    let mut c = [0; 10];
    for &l in labels {
        c[usize::from(l)] += 1;
    }
    c
}

#[test]
fn digits_has_1797_images_of_8x8_in_1437_train_and_360_test() {
    let d = digits();
    assert_eq!((d.classes, d.height, d.width), (10, 8, 8));
    assert_eq!(d.train.x.dim(), (1437, 64));
    assert_eq!(d.test.x.dim(), (360, 64));
    assert_eq!(d.train.labels.len(), 1437);
    assert_eq!(d.test.labels.len(), DIGITS_TEST);
    for x in [&d.train.x, &d.test.x] {
        assert!(
            x.iter()
                .all(|&p| p == p.trunc() && (0.0..=16.0).contains(&p))
        );
    }
}

#[test]
fn digits_split_is_stratified_within_one_of_the_class_share() {
    let d = digits();
    let all = class_counts(
        &digits_file_rows()
            .iter()
            .map(|(_, l)| *l)
            .collect::<Vec<_>>(),
    );
    let train = class_counts(&d.train.labels);
    let test = class_counts(&d.test.labels);
    for c in 0..10 {
        assert!(
            train[c] > 0 && test[c] > 0,
            "class {c} missing from a split"
        );
        assert_eq!(train[c] + test[c], all[c]);
        let share = 360.0 * all[c] as f64 / 1797.0;
        assert!(
            (test[c] as f64 - share).abs() < 1.0,
            "class {c}: {} test images, share {share}",
            test[c]
        );
    }
}

#[test]
fn digits_split_is_the_same_on_two_calls() {
    assert_eq!(digits(), digits());
}

#[test]
fn digits_train_and_test_are_disjoint_and_together_are_the_whole_file() {
    let d = digits();
    // As multisets of (pixels, label): train + test == the file, so no row is in both splits
    // more often than it is in the file.
    let mut split = rows_of(&d.train.x, &d.train.labels);
    split.extend(rows_of(&d.test.x, &d.test.labels));
    let mut file = digits_file_rows();
    assert_eq!(file.len(), 1797);
    split.sort();
    file.sort();
    assert_eq!(split, file);
}

#[test]
fn digits_split_order_is_mixed_from_the_first_images() {
    // Each split is shuffled after the stratified draw, so a prefix is not one class.
    let d = digits();
    for labels in [&d.train.labels, &d.test.labels] {
        let first: std::collections::BTreeSet<u8> = labels[..30].iter().copied().collect();
        assert!(first.len() >= 5, "first 30 labels cover only {first:?}");
    }
}

#[test]
fn digits_split_is_pinned() {
    // Regression pin, taken from this implementation when it was written (ChaCha8 seed 0, stream
    // Data, the Fisher-Yates in images.rs). A change here means every digits result moves.
    let d = digits();
    assert_eq!(
        &d.train.labels[..12],
        &[4, 8, 5, 9, 6, 0, 3, 9, 5, 2, 4, 4],
        "train labels"
    );
    assert_eq!(
        &d.test.labels[..12],
        &[2, 2, 1, 6, 2, 9, 0, 3, 4, 3, 0, 4],
        "test labels"
    );
    assert_eq!(
        class_counts(&d.test.labels),
        [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]
    );
}

#[test]
fn standardise_gives_train_mean_0_std_1_and_returns_the_train_statistics() {
    let mut d = digits();
    let raw = d.clone();
    // Exactly, from integer sums: the pixels are whole numbers, so sum x and sum x^2 fit in u64.
    let n = raw.train.x.len() as f64;
    let sum: u64 = raw.train.x.iter().map(|&v| v as u64).sum();
    let sum_sq: u64 = raw.train.x.iter().map(|&v| (v * v) as u64).sum();
    let m = sum as f64 / n;
    // n * sum x^2 - (sum x)^2 is exact in u128; one rounding each for the division and sqrt.
    let n_int = raw.train.x.len() as u128;
    let num = n_int * sum_sq as u128 - (sum as u128) * (sum as u128);
    let s = (num as f64 / (n * n)).sqrt();

    let (mean, std) = standardise(&mut d);
    assert!(
        (mean - m).abs() < 1e-12 && (std - s).abs() < 1e-12,
        "standardise returned ({mean}, {std}), the train pixels have ({m}, {s})"
    );
    let tm = d.train.x.sum() / n;
    let ts = (d.train.x.mapv(|v| (v - tm).powi(2)).sum() / n).sqrt();
    assert!(tm.abs() < 1e-12, "train mean {tm}");
    assert!((ts - 1.0).abs() < 1e-12, "train std {ts}");
    // The test split is scaled with the train statistics (not its own), pixel by pixel.
    for (a, b) in d.test.x.iter().zip(raw.test.x.iter()) {
        assert!((a - (b - mean) / std).abs() < 1e-12);
    }
    assert_eq!(d.train.labels, raw.train.labels);
}

#[test]
fn standardise_is_global_so_a_pixel_that_is_always_0_maps_to_minus_mean_over_std() {
    let mut d = digits();
    // Pixel (0, 0) is 0 in every digit: per-pixel scaling would divide by a zero std.
    assert!(d.train.x.column(0).iter().all(|&p| p == 0.0));
    let (mean, std) = standardise(&mut d);
    for &p in d.train.x.column(0) {
        assert!((p + mean / std).abs() < 1e-12);
    }
}

#[test]
fn one_hot_puts_a_single_one_at_each_label() {
    let y = one_hot(&[2, 0, 9], 10);
    assert_eq!(y.dim(), (3, 10));
    for (row, &l) in y.rows().into_iter().zip(&[2usize, 0, 9]) {
        assert_eq!(row.sum(), 1.0);
        assert_eq!(row[l], 1.0);
    }
    let d = digits();
    let y = one_hot(&d.train.labels, d.classes);
    assert_eq!(y.dim(), (1437, 10));
    assert_eq!(y.sum(), 1437.0);
}

// ---------------------------------------------------------------------------------------------
// IDX files

/// 5 train and 3 test images of 2x3, pixel values 0..=255 spread out, with their labels.
struct Small {
    train_px: Vec<u8>,
    train_lb: Vec<u8>,
    test_px: Vec<u8>,
    test_lb: Vec<u8>,
}

fn small() -> Small {
    Small {
        train_px: (0..30u32).map(|i| (i * 37 % 256) as u8).collect(),
        train_lb: vec![0, 9, 3, 3, 7],
        test_px: (0..18u32).map(|i| (255 - i * 11) as u8).collect(),
        test_lb: vec![5, 1, 9],
    }
}

/// The four files of `small()`, as (name, bytes).
fn small_files() -> Vec<(&'static str, Vec<u8>)> {
    let s = small();
    vec![
        (TRAIN_IMAGES, idx_images(5, 2, 3, &s.train_px)),
        (TRAIN_LABELS, idx_labels(&s.train_lb)),
        (TEST_IMAGES, idx_images(3, 2, 3, &s.test_px)),
        (TEST_LABELS, idx_labels(&s.test_lb)),
    ]
}

/// Write `files` into a fresh directory, each gzipped (and named `.gz`) if `gz`.
fn write_dir(name: &str, files: &[(&str, Vec<u8>)], gz: bool) -> PathBuf {
    let dir = fresh_dir(name);
    for (f, bytes) in files {
        if gz {
            std::fs::write(dir.join(format!("{f}.gz")), gzip(bytes)).unwrap();
        } else {
            std::fs::write(dir.join(f), bytes).unwrap();
        }
    }
    dir
}

fn assert_is_small(set: &ImageSet) {
    let s = small();
    assert_eq!((set.classes, set.height, set.width), (10, 2, 3));
    let as_f64 = |v: &[u8]| v.iter().map(|&p| f64::from(p)).collect::<Vec<_>>();
    assert_eq!(
        set.train.x,
        Array2::from_shape_vec((5, 6), as_f64(&s.train_px)).unwrap()
    );
    assert_eq!(
        set.test.x,
        Array2::from_shape_vec((3, 6), as_f64(&s.test_px)).unwrap()
    );
    assert_eq!(set.train.labels, s.train_lb);
    assert_eq!(set.test.labels, s.test_lb);
}

#[test]
fn idx_plain_files_read_back_exactly() {
    let dir = write_dir("plain", &small_files(), false);
    assert_is_small(&read_idx_dir(&dir, "mnist").unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_gzipped_files_read_back_exactly() {
    let dir = write_dir("gz", &small_files(), true);
    assert_is_small(&read_idx_dir(&dir, "fashion-mnist").unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_a_gzipped_file_reads_the_same_as_its_plain_copy() {
    let plain = write_dir("one-plain", &small_files(), false);
    let mixed = write_dir("one-gz", &small_files(), false);
    std::fs::remove_file(mixed.join(TRAIN_IMAGES)).unwrap();
    std::fs::write(
        mixed.join(format!("{TRAIN_IMAGES}.gz")),
        gzip(&small_files()[0].1),
    )
    .unwrap();
    assert_eq!(
        read_idx_dir(&plain, "mnist").unwrap(),
        read_idx_dir(&mixed, "mnist").unwrap()
    );
    std::fs::remove_dir_all(plain).unwrap();
    std::fs::remove_dir_all(mixed).unwrap();
}

#[test]
fn idx_gzip_is_told_by_its_magic_bytes_not_its_name() {
    // Gzipped bytes under the plain names, and plain bytes under the .gz names.
    let files = small_files();
    let dir = fresh_dir("magic");
    for (f, bytes) in &files {
        std::fs::write(dir.join(f), gzip(bytes)).unwrap();
    }
    assert_is_small(&read_idx_dir(&dir, "mnist").unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = fresh_dir("magic-plain");
    for (f, bytes) in &files {
        std::fs::write(dir.join(format!("{f}.gz")), bytes).unwrap();
    }
    assert_is_small(&read_idx_dir(&dir, "mnist").unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_dotted_spelling_is_accepted() {
    // train-images.idx3-ubyte, as some mirrors name them.
    let dir = fresh_dir("dotted");
    for (f, bytes) in small_files() {
        let dotted = f.replacen("-idx", ".idx", 1);
        std::fs::write(dir.join(dotted), bytes).unwrap();
    }
    assert_is_small(&read_idx_dir(&dir, "mnist").unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_standardise_and_one_hot_work_on_idx_data() {
    let dir = write_dir("std", &small_files(), false);
    let mut set = read_idx_dir(&dir, "mnist").unwrap();
    let (mean, std) = standardise(&mut set);
    let px = small().train_px;
    let m = px.iter().map(|&p| f64::from(p)).sum::<f64>() / 30.0;
    assert!((mean - m).abs() < 1e-12 && std > 0.0);
    assert!(set.train.x.sum().abs() < 1e-9);
    assert_eq!(one_hot(&set.test.labels, set.classes)[[0, 5]], 1.0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The error of reading `files` (plain) as a directory; asserts one line naming `file` (the full
/// path as the directory was given) and containing every one of `words`.
fn refused(name: &str, files: &[(&str, Vec<u8>)], file: &str, words: &[&str]) -> String {
    let dir = write_dir(name, files, false);
    let e: DataError = read_idx_dir(&dir, "mnist").expect_err("must be refused");
    let msg = e.to_string();
    let path = dir.join(file).display().to_string();
    assert!(msg.contains(&path), "{msg:?} does not name {path}");
    assert!(!msg.contains('\n'), "{msg:?} is not one line");
    assert!(msg.starts_with("mnist: "), "{msg:?}");
    for w in words {
        assert!(msg.contains(w), "{msg:?} does not say {w:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
    msg
}

/// `small_files()` with file `i` replaced.
fn with(i: usize, bytes: Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    let mut f = small_files();
    f[i].1 = bytes;
    f
}

#[test]
fn idx_missing_file_is_refused_naming_it() {
    let mut files = small_files();
    files.remove(3);
    let msg = refused("missing", &files, TEST_LABELS, &["cannot read", "(or .gz)"]);
    assert!(msg.ends_with("No such file or directory"), "{msg:?}");
}

#[test]
fn idx_wrong_magic_is_refused_with_expected_and_got_in_hex() {
    // Labels where the train images should be.
    refused(
        "magic",
        &with(0, idx_labels(&[1, 2, 3])),
        TRAIN_IMAGES,
        &["magic", "0x00000803", "0x00000801"],
    );
}

#[test]
fn idx_truncated_data_is_refused_with_expected_and_found_bytes() {
    let mut b = small_files()[2].1.clone();
    b.truncate(b.len() - 4);
    refused(
        "trunc",
        &with(2, b),
        TEST_IMAGES,
        &["expected 18 bytes", "found 14"],
    );
}

#[test]
fn idx_truncated_header_and_trailing_bytes_are_refused() {
    let b = small_files()[0].1[..10].to_vec();
    refused(
        "trunc-header",
        &with(0, b),
        TRAIN_IMAGES,
        &["truncated header"],
    );
    refused("empty", &with(1, Vec::new()), TRAIN_LABELS, &["truncated"]);
    let mut b = small_files()[1].1.clone();
    b.push(0);
    refused(
        "trailing",
        &with(1, b),
        TRAIN_LABELS,
        &["expected 5 bytes", "trailing"],
    );
}

#[test]
fn idx_gzip_that_fails_to_decode_is_refused() {
    let mut gz = gzip(&small_files()[1].1);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz[mid + 1] ^= 0x55;
    refused("badgz", &with(1, gz), TRAIN_LABELS, &["gzip"]);
    // Cut short: the stream ends before its data and trailer.
    let gz = gzip(&small_files()[0].1);
    let msg = refused(
        "shortgz",
        &with(0, gz[..gz.len() - 12].to_vec()),
        TRAIN_IMAGES,
        &[],
    );
    assert!(msg.contains("gzip") || msg.contains("expected"), "{msg:?}");
    // A corrupted CRC in the trailer.
    let mut gz = gzip(&small_files()[3].1);
    let crc = gz.len() - 8;
    gz[crc] ^= 1;
    refused("crcgz", &with(3, gz), TEST_LABELS, &["gzip"]);
}

#[test]
fn idx_mismatched_image_and_label_counts_name_both_files() {
    let msg = refused(
        "count",
        &with(1, idx_labels(&[0, 1, 2, 3])),
        TRAIN_IMAGES,
        &["5 images", "4 labels"],
    );
    assert!(
        msg.contains(TRAIN_LABELS),
        "{msg:?} does not name the labels file"
    );
}

#[test]
fn idx_label_of_10_or_more_is_refused() {
    refused(
        "label",
        &with(3, idx_labels(&[5, 10, 9])),
        TEST_LABELS,
        &["label 10", "index 1"],
    );
}

#[test]
fn idx_train_and_test_of_different_image_sizes_are_refused() {
    let msg = refused(
        "sizes",
        &with(2, idx_images(3, 3, 2, &small().test_px)),
        TRAIN_IMAGES,
        &["2x3", "3x2"],
    );
    assert!(msg.contains(TEST_IMAGES), "{msg:?}");
}

#[test]
fn idx_absurd_headers_are_refused_before_allocating() {
    // Each header alone, with no data: a reader that allocated first would try terabytes.
    refused(
        "many",
        &with(0, idx_images(10_000_001, 2, 3, &[])),
        TRAIN_IMAGES,
        &["10000001"],
    );
    refused(
        "big",
        &with(0, idx_images(5, 4097, 3, &[])),
        TRAIN_IMAGES,
        &["4097x3"],
    );
    refused(
        "huge",
        &with(0, idx_images(10_000_000, 4096, 4096, &[])),
        TRAIN_IMAGES,
        &["pixels"],
    );
    refused(
        "labels",
        &with(1, {
            let mut b = 0x0000_0801u32.to_be_bytes().to_vec();
            b.extend(u32::MAX.to_be_bytes());
            b
        }),
        TRAIN_LABELS,
        &["4294967295"],
    );
    refused(
        "zero",
        &with(0, idx_images(0, 2, 3, &[])),
        TRAIN_IMAGES,
        &["no items"],
    );
}

#[test]
fn idx_never_panics_on_truncated_or_corrupted_bytes() {
    // Every truncation and every single-byte change (to 0x00, 0xff, and bit-flipped) of the
    // train images and labels, plain and gzipped: Ok or one-line Err, never a panic.
    let dir = fresh_dir("fuzz");
    let files = small_files();
    for (f, bytes) in &files[2..] {
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    let mut variants: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, (_, good)) in files[..2].iter().enumerate() {
        for src in [good.clone(), gzip(good)] {
            for len in 0..src.len() {
                variants.push((i, src[..len].to_vec()));
            }
            for k in 0..src.len() {
                for v in [0x00, 0xff, src[k] ^ 0x80] {
                    let mut b = src.clone();
                    b[k] = v;
                    variants.push((i, b));
                }
            }
        }
    }
    let mut outcomes: BTreeMap<bool, usize> = BTreeMap::new();
    for (i, bytes) in variants {
        for (j, (f, good)) in files[..2].iter().enumerate() {
            let b = if i == j { &bytes } else { good };
            std::fs::write(dir.join(f), b).unwrap();
        }
        let r = read_idx_dir(&dir, "mnist");
        if let Err(e) = &r {
            assert!(!e.0.contains('\n'), "{e:?}");
            assert!(e.0.contains(&dir.display().to_string()), "{e:?}");
        }
        *outcomes.entry(r.is_ok()).or_default() += 1;
    }
    // Most changes are caught; pixel changes (and some gzip header bytes) are not errors.
    assert!(outcomes[&false] > outcomes[&true], "{outcomes:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_trailing_bytes_after_a_gzip_stream_are_named_as_such() {
    // Shorter than a gzip header (was "unexpected end of file") and longer (was "invalid gzip
    // header").
    for (name, junk) in [
        ("junk-short", &b"junk\n"[..]),
        ("junk-long", &b"this is not gzip data at all\n"[..]),
    ] {
        let mut gz = gzip(&small_files()[0].1);
        gz.extend_from_slice(junk);
        refused(
            name,
            &with(0, gz),
            TRAIN_IMAGES,
            &["trailing bytes after the gzip stream", "not gzip data"],
        );
    }
    // Several gzip members one after another are one stream, as gunzip reads them.
    let b = &small_files()[1].1;
    let mut two = gzip(&b[..7]);
    two.extend(gzip(&b[7..]));
    let dir = write_dir("members", &with(1, two), false);
    assert_is_small(&read_idx_dir(&dir, "mnist").unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_a_directory_in_place_of_a_file_is_refused_naming_it() {
    let dir = write_dir("isdir", &small_files(), false);
    std::fs::remove_file(dir.join(TRAIN_LABELS)).unwrap();
    std::fs::create_dir(dir.join(TRAIN_LABELS)).unwrap();
    let msg = read_idx_dir(&dir, "mnist").unwrap_err().to_string();
    let path = dir.join(TRAIN_LABELS).display().to_string();
    assert!(msg.contains(&path), "{msg:?}");
    assert!(msg.contains("not a regular file (a directory)"), "{msg:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idx_image_set_counts_in_the_footprint_of_a_run_on_it() {
    use bn_lab::config::{Dtype, Init, Loss};
    use bn_lab::data::Task;
    use bn_lab::data::images::image_set_bytes;
    use bn_lab::memory::Footprint;
    use bn_lab::spec::{DataSpec, NetSpec};
    let dir = write_dir("footprint", &small_files(), false);
    let net = NetSpec {
        width: 4,
        batch: 2,
        d_in: 6,
        d_out: 10,
        init: Init::He,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
        eps: 1e-5,
        momentum: 0.1,
        seed: 0,
        dtype: Dtype::F32,
    };
    // Two of the five training images: the whole set is held all the same.
    let data = DataSpec {
        task: Task::Mnist(dir.clone()),
        n_train: 2,
        n_test: 1,
        loss: Loss::Ce,
    };
    data.validate(2, 6, 10).unwrap();
    let fp = data.footprint(Footprint::new(), &net, 1, 1, true);
    let part = fp
        .parts
        .iter()
        .find(|p| p.what == "image set")
        .unwrap_or_else(|| panic!("no image set in {fp:?}"));
    assert_eq!(part.bytes, image_set_bytes(5, 3, 6));
    assert_eq!(part.bytes, 8.0 * 6.0 * 8.0 + 8.0);
    // Validation read only the headers: the set is still to be read, and counts as needed.
    assert!(!data.task.is_loaded());
    assert!(!part.held && part.reduce.is_empty(), "{part:?}");
    // Once read (as a command does after the check), it is held: needed and already in memory.
    bn_lab::data::read_pending_sets().unwrap();
    assert!(data.task.is_loaded());
    let held = data.footprint(Footprint::new(), &net, 1, 1, true);
    let part = held.parts.iter().find(|p| p.what == "image set").unwrap();
    assert!(
        part.held && part.bytes == image_set_bytes(5, 3, 6),
        "{part:?}"
    );
    // The pixels and classes are the set's: no refusal suggests changing them.
    for p in &fp.parts {
        assert!(
            !p.reduce.iter().any(|f| f.starts_with("d_")),
            "{}: {:?}",
            p.what,
            p.reduce
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn idx_fifo_in_place_of_a_file_is_refused_at_once() {
    // Opening a FIFO for reading waits for a writer, and reading it never ends.
    let dir = write_dir("fifo", &small_files(), false);
    let fifo = dir.join(TRAIN_IMAGES);
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let task = format!("mnist:{}", dir.display());
    let out = dir.join("out").display().to_string();
    let start = std::time::Instant::now();
    let ran = run_bounded(
        "fifo-run",
        &[
            "train", "--task", &task, "--steps", "1", "--batch", "2", "--out", &out,
        ],
        &[],
        4 << 20,
        std::time::Duration::from_secs(30),
    );
    let err = ran.stderr.trim_end();
    assert_eq!(ran.code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("Error: --task: mnist: "), "{err}");
    assert!(err.contains(&fifo.display().to_string()), "{err}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    std::fs::remove_dir_all(dir).unwrap();
}
