//! Real labelled image data sets: the 8x8 digits shipped with the crate, and MNIST-format IDX files
//! (MNIST, Fashion-MNIST) read from a directory.
//!
//! Pixels stay as read (digits 0..16, IDX 0..255) as `f64`, one image per row in row-major order
//! (`height` rows of `width` pixels); [`standardise`] scales them with the training split's statistics.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use flate2::read::MultiGzDecoder;
use ndarray::{Array2, Axis};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use super::{Stream, rng};
use crate::config::human_bytes;

/// Labelled images.
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled {
    /// `(n, height * width)`: raw pixel values as read, each image's rows one after another.
    pub x: Array2<f64>,
    /// `n` labels, each in `0..classes`.
    pub labels: Vec<u8>,
}

/// A train/test pair of labelled images of one size.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub train: Labelled,
    pub test: Labelled,
    pub classes: usize,
    pub height: usize,
    pub width: usize,
}

/// A data file that cannot be read: one line naming the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

/// The seed of the digits' train/test split (stream [`Stream::Data`]).
pub const DIGITS_SPLIT_SEED: u64 = 0;
/// Images in the digits' test split (about a fifth of the 1797).
pub const DIGITS_TEST: usize = 360;

/// scikit-learn 1.9.1's `sklearn/datasets/data/digits.csv.gz`; see `src/data/DIGITS.md`.
const DIGITS_GZ: &[u8] = include_bytes!("digits.csv.gz");
const DIGITS_N: usize = 1797;
const DIGITS_SIDE: usize = 8;
const DIGITS_CLASSES: usize = 10;

/// The shipped digits (1797 8x8 images, pixels 0..16, classes 0..9; `src/data/DIGITS.md`), split
/// into 1437 train and 360 test images, stratified by class, the same on every platform:
///
/// 1. Class `c` (with `n_c` images, indices in file order) gets `t_c` test images: the round-to-nearest
///    of `360 n_c / 1797`, fixed by largest remainder so that the `t_c` sum to exactly 360. That is:
///    each class gets `floor(360 n_c / 1797)`, and the `360 - sum floor` images left go one each to
///    the classes with the largest remainders `360 n_c mod 1797`, ties to the smaller digit.
/// 2. One generator, `data::rng(DIGITS_SPLIT_SEED, Stream::Data)` (ChaCha8), draws everything. For
///    `c = 0..9` in turn it shuffles class `c`'s indices; the first `t_c` go to test, the rest to
///    train. The train list is class 0's train indices, then class 1's, ...; the test list likewise.
/// 3. The same generator then shuffles the train list, then the test list, so that any prefix of
///    either split is a mixed sample of the classes.
///
/// Every shuffle is Fisher-Yates: for `i = len-1` down to 1, swap items `i` and `j`, where
/// `j = u % (i+1)` for the first 64-bit word `u = next_u64()` below `2^64 - (2^64 mod (i+1))`
/// (written out, not `rand`'s `shuffle`, so a `rand` upgrade cannot move the split).
pub fn digits() -> ImageSet {
    let all = parse_digits(DIGITS_GZ)
        .expect("src/data/digits.csv.gz is part of the crate and tests/suite/datasets.rs reads it");
    let (train_idx, test_idx) = stratified_split(&all.labels, DIGITS_CLASSES, DIGITS_TEST);
    let take = |idx: &[usize]| Labelled {
        x: all.x.select(Axis(0), idx),
        labels: idx.iter().map(|&i| all.labels[i]).collect(),
    };
    ImageSet {
        train: take(&train_idx),
        test: take(&test_idx),
        classes: DIGITS_CLASSES,
        height: DIGITS_SIDE,
        width: DIGITS_SIDE,
    }
}

/// Parse the digits CSV (gzipped): rows of 64 pixels then the label.
fn parse_digits(gz: &[u8]) -> Result<Labelled, String> {
    let mut text = String::new();
    MultiGzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| format!("digits.csv.gz: {e}"))?;
    let pixels = DIGITS_SIDE * DIGITS_SIDE;
    let mut x = Vec::with_capacity(DIGITS_N * pixels);
    let mut labels = Vec::with_capacity(DIGITS_N);
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != pixels + 1 {
            return Err(format!("line {}: {} fields", line_no + 1, fields.len()));
        }
        for f in &fields[..pixels] {
            let v: u8 = f
                .trim()
                .parse()
                .map_err(|e| format!("line {}: {e}", line_no + 1))?;
            x.push(f64::from(v));
        }
        let label: u8 = fields[pixels]
            .trim()
            .parse()
            .map_err(|e| format!("line {}: {e}", line_no + 1))?;
        if usize::from(label) >= DIGITS_CLASSES {
            return Err(format!("line {}: label {label}", line_no + 1));
        }
        labels.push(label);
    }
    if labels.len() != DIGITS_N {
        return Err(format!("{} rows, expected {DIGITS_N}", labels.len()));
    }
    let x = Array2::from_shape_vec((DIGITS_N, pixels), x).map_err(|e| e.to_string())?;
    Ok(Labelled { x, labels })
}

/// The split rule documented on [`digits`]: `(train indices, test indices)`, each in shuffled order.
fn stratified_split(labels: &[u8], classes: usize, n_test: usize) -> (Vec<usize>, Vec<usize>) {
    let n = labels.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[usize::from(l)].push(i);
    }
    // Largest remainder: floors first, then the rest to the largest remainders, ties to the smaller
    // class. This is round-to-nearest whenever that sums to n_test, and its fix when it does not.
    let mut quota: Vec<usize> = by_class.iter().map(|v| n_test * v.len() / n).collect();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(n_test * by_class[c].len() % n));
    let short = n_test - quota.iter().sum::<usize>();
    for &c in order.iter().take(short) {
        quota[c] += 1;
    }

    let mut r = rng(DIGITS_SPLIT_SEED, Stream::Data);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (idx, &t) in by_class.iter_mut().zip(&quota) {
        shuffle(idx, &mut r);
        test.extend_from_slice(&idx[..t]);
        train.extend_from_slice(&idx[t..]);
    }
    shuffle(&mut train, &mut r);
    shuffle(&mut test, &mut r);
    (train, test)
}

/// Fisher-Yates: for `i = len-1` down to 1, swap `v[i]` with `v[j]`, `j` uniform in `0..=i`, drawn
/// as `u % (i+1)` from 64-bit words `u = next_u64()`, rejecting the top `2^64 mod (i+1)` values so
/// that `j` is exactly uniform.
fn shuffle(v: &mut [usize], r: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        let m = i as u64 + 1;
        let reject = (u64::MAX % m + 1) % m; // 2^64 mod m
        let j = loop {
            let u = r.next_u64();
            if u <= u64::MAX - reject {
                break (u % m) as usize;
            }
        };
        v.swap(i, j);
    }
}

/// Refused before any allocation: more images than this in one IDX file.
pub const MAX_IDX_IMAGES: usize = 10_000_000;
/// Refused before any allocation: an image side (rows or columns) above this.
pub const MAX_IDX_SIDE: usize = 4096;
/// Refused before any allocation: more pixels than this in one IDX file (2^30, 1 GiB of bytes and
/// 8 GiB as f64; MNIST's training images are 47 million).
pub const MAX_IDX_PIXELS: usize = 1 << 30;

const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// Classes of an IDX set (MNIST and Fashion-MNIST have 10; every label must be below).
pub const IDX_CLASSES: usize = 10;

/// Bytes read at a time from an IDX file's data.
const IDX_CHUNK: usize = 64 << 10;
/// Bytes held while the four files are read besides the set itself: the chunk, and per file its
/// buffered reader and gzip decoder (tens of KiB each), with room to spare.
pub const IDX_READ_BYTES: f64 = (1 << 20) as f64;

/// Bytes an image set of `n_train + n_test` images of `pixels` pixels holds once read: every
/// pixel as an `f64` (read straight into it, chunk by chunk; [`standardise`] works in place) and
/// every label as a byte.
pub fn image_set_bytes(n_train: usize, n_test: usize, pixels: usize) -> f64 {
    (n_train as f64 + n_test as f64) * (8.0 * pixels as f64 + 1.0)
}

/// MNIST-format IDX files in `dir`: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each plain or gzipped (gzip is told by
/// its magic bytes `1f 8b`, not by the name). Each name is looked for as given, then with `.gz`,
/// then in the `train-images.idx3-ubyte` spelling with and without `.gz`; the first that exists is
/// read. `what` ("mnist" or "fashion-mnist", which share names and format) starts every message.
///
/// The format is big-endian: images have magic `0x00000803` (u8 pixels, 3 dims: n, rows, cols),
/// labels `0x00000801` (u8, 1 dim: n), then exactly the data. Every label must be below 10.
/// Headers beyond [`MAX_IDX_IMAGES`], [`MAX_IDX_SIDE`] or [`MAX_IDX_PIXELS`] are refused before
/// anything is allocated, and no input makes this panic.
///
/// The four headers are read first: a set that would not fit in
/// [`crate::memory::memory_limit_bytes`] ([`image_set_bytes`] and [`IDX_READ_BYTES`]) is refused
/// before any data is read. Anything but a regular file (a FIFO, a device, a directory) is
/// refused without waiting on it.
pub fn read_idx_dir(dir: &Path, what: &str) -> Result<ImageSet, DataError> {
    read_idx_dir_within(dir, what, crate::memory::memory_limit_bytes())
}

/// [`read_idx_dir`] with `limit` bytes of memory for the set.
pub fn read_idx_dir_within(dir: &Path, what: &str, limit: f64) -> Result<ImageSet, DataError> {
    let train = open_pair(dir, what, "train")?;
    let test = open_pair(dir, what, "t10k")?;
    let need = [&train, &test]
        .iter()
        .map(|p| 8.0 * p.images.len as f64 + p.labels.len as f64)
        .sum::<f64>()
        + IDX_READ_BYTES;
    if need > limit {
        let (big, other, split) = if train.images.len >= test.images.len {
            (&train.images, &test.images, "test")
        } else {
            (&test.images, &train.images, "training")
        };
        return Err(err(format!(
            "{what}: {}: {} images of {}x{} (and {} {split} image{}) need about {} of memory as f64, but only {} is available",
            big.path.display(),
            big.dims[0],
            big.dims[1],
            big.dims[2],
            other.dims[0],
            if other.dims[0] == 1 { "" } else { "s" },
            human_bytes(need),
            human_bytes(limit.max(0.0))
        )));
    }
    // The data are read before the files are compared, so that a corrupted gzip is reported as
    // such rather than by the sizes its header happened to decode to.
    let train = train.read()?;
    let test = test.read()?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(err(format!(
            "{what}: train images ({}) are {}x{} but test images ({}) are {}x{}",
            train.images_path.display(),
            train.rows,
            train.cols,
            test.images_path.display(),
            test.rows,
            test.cols
        )));
    }
    Ok(ImageSet {
        train: train.set,
        test: test.set,
        classes: IDX_CLASSES,
        height: train.rows,
        width: train.cols,
    })
}

/// The sizes of the IDX set in `dir` from its four headers alone (no data is read): training
/// and test images, and pixels per image. Files that are missing, not regular, not IDX, of
/// sizes beyond the caps, or whose headers disagree (images and labels, train and test sides)
/// are refused here, as by [`read_idx_dir`].
pub fn read_idx_shape(dir: &Path, what: &str) -> Result<(usize, usize, usize), DataError> {
    let train = open_pair(dir, what, "train")?;
    let test = open_pair(dir, what, "t10k")?;
    for pair in [&train, &test] {
        let (n, labels) = (pair.images.dims[0], pair.labels.dims[0]);
        if labels != n {
            return Err(err(format!(
                "{what}: {} has {n} images but {} has {labels} labels",
                pair.images.path.display(),
                pair.labels.path.display(),
            )));
        }
    }
    let side = |p: &Pair| (p.images.dims[1], p.images.dims[2]);
    if side(&train) != side(&test) {
        return Err(err(format!(
            "{what}: train images ({}) are {}x{} but test images ({}) are {}x{}",
            train.images.path.display(),
            side(&train).0,
            side(&train).1,
            test.images.path.display(),
            side(&test).0,
            side(&test).1
        )));
    }
    let (rows, cols) = side(&train);
    Ok((train.images.dims[0], test.images.dims[0], rows * cols))
}

/// `{prefix}-images-idx3-ubyte` with `{prefix}-labels-idx1-ubyte`, headers read, data not yet.
struct Pair<'a> {
    images: Opened<'a>,
    labels: Opened<'a>,
}

fn open_pair<'a>(dir: &Path, what: &'a str, prefix: &str) -> Result<Pair<'a>, DataError> {
    Ok(Pair {
        images: open_idx(dir, what, &format!("{prefix}-images"), Kind::Images)?,
        labels: open_idx(dir, what, &format!("{prefix}-labels"), Kind::Labels)?,
    })
}

/// One split as read.
struct Split {
    set: Labelled,
    rows: usize,
    cols: usize,
    images_path: PathBuf,
}

impl Pair<'_> {
    /// Read both files' data and check them against each other.
    fn read(self) -> Result<Split, DataError> {
        let what = self.images.what;
        let [n, rows, cols] = self.images.dims[..] else {
            unreachable!("Kind::Images reads 3 dimensions")
        };
        let (images_path, labels_path) = (self.images.path.clone(), self.labels.path.clone());
        let x = self.images.pixels()?;
        let labels = self.labels.bytes()?;
        if labels.len() != n {
            return Err(err(format!(
                "{what}: {} has {n} images but {} has {} labels",
                images_path.display(),
                labels_path.display(),
                labels.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= IDX_CLASSES)
        {
            return Err(err(format!(
                "{what}: {}: label {l} at index {i} is not a class 0..{}",
                labels_path.display(),
                IDX_CLASSES - 1
            )));
        }
        let x = Array2::from_shape_vec((n, rows * cols), x)
            .expect("pixels() read exactly n * rows * cols values");
        Ok(Split {
            set: Labelled { x, labels },
            rows,
            cols,
            images_path,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IDX_IMAGES_MAGIC,
            Kind::Labels => IDX_LABELS_MAGIC,
        }
    }
    fn ndims(self) -> usize {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            Kind::Images => "idx3-ubyte",
            Kind::Labels => "idx1-ubyte",
        }
    }
}

/// An IDX file whose header has been read and checked, positioned at its data.
struct Opened<'a> {
    what: &'a str,
    path: PathBuf,
    dims: Vec<usize>,
    /// Bytes of data the header announces.
    len: usize,
    header_len: usize,
    gz: bool,
    reader: Box<dyn Read + 'a>,
}

/// Find `{stem}-{suffix}` in `dir` (spellings as on [`read_idx_dir`]) and read its header.
fn open_idx<'a>(
    dir: &Path,
    what: &'a str,
    stem: &str,
    kind: Kind,
) -> Result<Opened<'a>, DataError> {
    let primary = dir.join(format!("{stem}-{}", kind.suffix()));
    let candidates = [
        primary.clone(),
        dir.join(format!("{stem}-{}.gz", kind.suffix())),
        dir.join(format!("{stem}.{}", kind.suffix())),
        dir.join(format!("{stem}.{}.gz", kind.suffix())),
    ];
    let mut first_err = None;
    for path in &candidates {
        match crate::files::open_regular(path) {
            Ok(Ok(file)) => return open_idx_from(file, path, what, kind),
            Ok(Err(not_regular)) => {
                return Err(err(format!(
                    "{what}: {}: not a regular file ({not_regular}); give the IDX file itself",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                return Err(err(format!(
                    "{what}: cannot read {}: {}",
                    path.display(),
                    io_msg(&e)
                )));
            }
        }
    }
    let e = first_err.expect("every candidate failed with NotFound");
    Err(err(format!(
        "{what}: cannot read {} (or .gz): {}",
        primary.display(),
        io_msg(&e)
    )))
}

/// Read the header of one IDX file of `kind` from `file`, plain or gzipped; `path` names it in
/// messages. Nothing beyond the header is read or allocated.
fn open_idx_from<'a>(
    mut file: impl Read + 'a,
    path: &Path,
    what: &'a str,
    kind: Kind,
) -> Result<Opened<'a>, DataError> {
    let name = path.display();
    let fail = |msg: String| err(format!("{what}: {name}: {msg}"));
    let first =
        read_at_most(&mut file, 2).map_err(|e| fail(format!("read failed: {}", io_msg(&e))))?;
    let gz = first == [0x1f, 0x8b];
    let chained = BufReader::new(Cursor::new(first).chain(file));
    let mut reader: Box<dyn Read + 'a> = if gz {
        Box::new(GzMembers::new(chained))
    } else {
        Box::new(chained)
    };

    let header_len = 4 + 4 * kind.ndims();
    let header = read_at_most(&mut reader, header_len).map_err(|e| read_error(&fail, gz, &e))?;
    if header.len() < 4 {
        return Err(fail(format!(
            "truncated: expected a 4-byte magic number, found {} bytes",
            header.len()
        )));
    }
    let word =
        |k: usize| u32::from_be_bytes([header[k], header[k + 1], header[k + 2], header[k + 3]]);
    let magic = word(0);
    if magic != kind.magic() {
        let described = match kind {
            Kind::Images => "IDX images: u8, 3 dimensions",
            Kind::Labels => "IDX labels: u8, 1 dimension",
        };
        return Err(fail(format!(
            "wrong magic number: expected 0x{:08x} ({described}), got 0x{magic:08x}",
            kind.magic()
        )));
    }
    if header.len() < header_len {
        return Err(fail(format!(
            "truncated header: expected {header_len} bytes, found {}",
            header.len()
        )));
    }
    let dims: Vec<usize> = (0..kind.ndims())
        .map(|d| usize::try_from(word(4 + 4 * d)).unwrap_or(usize::MAX))
        .collect();
    let n = dims[0];
    if n == 0 {
        return Err(fail("holds no items (n = 0)".into()));
    }
    if n > MAX_IDX_IMAGES {
        return Err(fail(format!(
            "claims {n} items, more than the {MAX_IDX_IMAGES} accepted"
        )));
    }
    let mut len = n;
    if kind == Kind::Images {
        let (rows, cols) = (dims[1], dims[2]);
        if rows == 0 || cols == 0 || rows > MAX_IDX_SIDE || cols > MAX_IDX_SIDE {
            return Err(fail(format!(
                "claims {rows}x{cols} images; each side must be 1..={MAX_IDX_SIDE}"
            )));
        }
        len = n
            .checked_mul(rows * cols)
            .filter(|&p| p <= MAX_IDX_PIXELS)
            .ok_or_else(|| {
                fail(format!(
                    "claims {n} images of {rows}x{cols}, more than the {MAX_IDX_PIXELS} pixels accepted"
                ))
            })?;
    }
    Ok(Opened {
        what,
        path: path.to_path_buf(),
        dims,
        len,
        header_len,
        gz,
        reader,
    })
}

impl Opened<'_> {
    fn fail(&self, msg: String) -> DataError {
        err(format!("{}: {}: {msg}", self.what, self.path.display()))
    }

    /// The data as bytes.
    fn bytes(self) -> Result<Vec<u8>, DataError> {
        let mut out = self.allocate::<u8>()?;
        self.read_data(|chunk| out.extend_from_slice(chunk))?;
        Ok(out)
    }

    /// The data as `f64`, converted chunk by chunk (the bytes are never held whole).
    fn pixels(self) -> Result<Vec<f64>, DataError> {
        let mut out = self.allocate::<f64>()?;
        self.read_data(|chunk| out.extend(chunk.iter().map(|&p| f64::from(p))))?;
        Ok(out)
    }

    /// An empty vector with room for exactly the data; failing to get it is an error, not an
    /// abort.
    fn allocate<T>(&self) -> Result<Vec<T>, DataError> {
        let mut v = Vec::new();
        v.try_reserve_exact(self.len).map_err(|_| {
            self.fail(format!(
                "cannot allocate {} for its {} values",
                human_bytes((self.len * size_of::<T>()) as f64),
                self.len
            ))
        })?;
        Ok(v)
    }

    /// Hand exactly the announced data to `take`, a chunk at a time, then check that the file
    /// ends there.
    fn read_data(mut self, mut take: impl FnMut(&[u8])) -> Result<(), DataError> {
        let mut chunk = vec![0u8; IDX_CHUNK.min(self.len)];
        let mut left = self.len;
        while left > 0 {
            let want = left.min(chunk.len());
            match self.reader.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(k) => {
                    take(&chunk[..k]);
                    left -= k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(&|m| self.fail(m), self.gz, &e)),
            }
        }
        let (len, header_len) = (self.len, self.header_len);
        let found = if left > 0 {
            (len - left).to_string()
        } else {
            // One byte beyond the data, so a longer file is caught (and a gzip's trailer is
            // checked).
            match read_at_most(&mut self.reader, 1) {
                Ok(extra) if extra.is_empty() => return Ok(()),
                Ok(_) => "more (trailing bytes)".to_string(),
                Err(e) => return Err(read_error(&|m| self.fail(m), self.gz, &e)),
            }
        };
        Err(self.fail(format!(
            "expected {len} bytes of data after the {header_len}-byte header, found {found}"
        )))
    }
}

/// A read error of an IDX file as `fail` words it.
fn read_error(fail: &dyn Fn(String) -> DataError, gz: bool, e: &io::Error) -> DataError {
    if e.get_ref().is_some_and(|inner| inner.is::<NotGzip>()) {
        fail("trailing bytes after the gzip stream that are not gzip data".into())
    } else if gz {
        fail(format!("gzip data cannot be decoded: {}", io_msg(e)))
    } else {
        fail(format!("read failed: {}", io_msg(e)))
    }
}

/// What follows the end of a gzip stream when it is neither the end of the file nor another
/// gzip member.
#[derive(Debug, thiserror::Error)]
#[error("trailing bytes after the gzip stream are not gzip data")]
struct NotGzip;

/// The decompressed bytes of every gzip member of `inner` in turn (as
/// [`flate2::bufread::MultiGzDecoder`]), with bytes after a member that do not start another
/// (`1f 8b`) reported as [`NotGzip`] rather than as a header that ends too soon.
struct GzMembers<R: BufRead> {
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(inner: R) -> Self {
        GzMembers {
            member: Some(GzDecoder::new(inner)),
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let k = member.read(buf)?;
            if k > 0 || buf.is_empty() {
                return Ok(k);
            }
            // This member has ended (its CRC and length checked): the file ends, another member
            // starts, or something else follows.
            let rest = member.get_mut().fill_buf()?;
            if rest.is_empty() {
                self.member = None;
                return Ok(0);
            }
            if !(rest[0] == 0x1f && rest.get(1).is_none_or(|&b| b == 0x8b)) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, NotGzip));
            }
            let inner = self.member.take().expect("matched above").into_inner();
            self.member = Some(GzDecoder::new(inner));
        }
    }
}

/// Up to `limit` bytes (fewer only at the end of the stream); memory grows with what is read,
/// not with `limit`.
fn read_at_most(r: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit as u64).read_to_end(&mut out)?;
    Ok(out)
}

/// An I/O error's text on one line, without Rust's " (os error N)" tail.
fn io_msg(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match e.raw_os_error() {
        Some(code) => s
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&s)
            .to_string(),
        None => s,
    };
    s.replace(['\n', '\r'], " ")
}

fn err(msg: String) -> DataError {
    DataError(msg.replace(['\n', '\r'], " "))
}

/// Standardise `set` in place with the TRAINING split's statistics: one global mean and one global
/// (population, divide-by-n) standard deviation over every training pixel, applied to train and
/// test alike: `x <- (x - mean) / std`. Returns `(mean, std)` of the training pixels as read.
///
/// Global, as torchvision's `Normalize((0.1307,), (0.3081,))` for MNIST, rather than per pixel:
/// per-pixel scaling divides border pixels that are almost always 0 by a std near 0, turning the
/// rare stroke that reaches them into a huge input. If every training pixel is the same (std 0),
/// only the mean is subtracted.
pub fn standardise(set: &mut ImageSet) -> (f64, f64) {
    let x = &set.train.x;
    let count = x.len() as f64;
    let mean = compensated_sum(x.iter().copied()) / count;
    // Two passes: the squared deviations from the mean, not E[x^2] - mean^2, which cancels.
    let var = compensated_sum(x.iter().map(|&v| (v - mean) * (v - mean))) / count;
    let std = var.sqrt();
    let scale = if std > 0.0 { std } else { 1.0 };
    for split in [&mut set.train.x, &mut set.test.x] {
        split.mapv_inplace(|v| (v - mean) / scale);
    }
    (mean, std)
}

/// Neumaier's compensated sum: exact to a few ulps of the result however many terms (MNIST's 47
/// million pixels would lose several digits to a plain running sum), in a fixed order.
fn compensated_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        c += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    sum + c
}

/// One-hot targets `(n, classes)`: row `i` is 1 at column `labels[i]`, 0 elsewhere.
///
/// Panics if a label is not below `classes` (every [`ImageSet`] holds labels in `0..classes`).
pub fn one_hot(labels: &[u8], classes: usize) -> Array2<f64> {
    let mut y = Array2::zeros((labels.len(), classes));
    for (i, &l) in labels.iter().enumerate() {
        assert!(
            usize::from(l) < classes,
            "label {l} at index {i} is not below classes = {classes}"
        );
        y[[i, usize::from(l)]] = 1.0;
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut b = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend((labels.len() as u32).to_be_bytes());
        b.extend(labels);
        b
    }

    #[test]
    fn gz_and_plain_copies_of_one_file_read_the_same() {
        let plain = labels_file(&[3, 1, 4, 1, 5]);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        let p = Path::new("x");
        let read = |bytes: &[u8]| {
            let opened = open_idx_from(bytes, p, "t", Kind::Labels).unwrap();
            (opened.dims.clone(), opened.bytes().unwrap())
        };
        let a = read(&plain);
        assert_eq!(a, read(&gz));
        assert_eq!(a, (vec![5], vec![3, 1, 4, 1, 5]));
    }

    #[test]
    fn stratified_split_quotas_are_largest_remainder() {
        // 3 classes of 5, 3, 2 items, 4 to test: exact 2, 1.2, 0.8 -> floors 2, 1, 0, the one
        // left goes to the largest remainder (class 2's 0.8).
        let labels = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2];
        let (train, test) = stratified_split(&labels, 3, 4);
        let count = |idx: &[usize], c: u8| idx.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(
            [count(&test, 0), count(&test, 1), count(&test, 2)],
            [2, 1, 1]
        );
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
