//! Seeded synthetic data and the random streams every experiment draws from.
//!
//! All randomness comes from ChaCha8 (rand_chacha), whose output stream is specified by the
//! algorithm and documented as portable, so a seed gives the same numbers on every platform and
//! crate version. Each use gets its own stream of the same seed, so changing one (say the data)
//! never shifts another (the weights).

use ndarray::{Array2, ArrayViewMut2, Axis};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::float::Float;
pub mod images;

use images::{DataError, ImageSet};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Independent random streams of one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Data = 0,
    Weights = 1,
    Shuffle = 2,
    Directions = 3,
    Teacher = 4,
    /// Noisy BN's injected noise ([`crate::config::BnNoise`]).
    Noise = 5,
}

/// The generator for `stream` of `seed`.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream as u64);
    r
}

/// A batch of inputs and regression targets.
#[derive(Clone, Debug)]
pub struct Batch<T> {
    /// `(n, d_in)`
    pub x: Array2<T>,
    /// `(n, d_out)`
    pub y: Array2<T>,
}

/// The linear-teacher regression task: `X ~ N(0, 1)` of shape `(n, d_in)`,
/// `T ~ N(0, 1/d_in)` of shape `(d_in, d_out)`, `Y = X T`. Drawn and multiplied in f64, then
/// rounded to `T`, so f32 and f64 runs see the same data.
pub fn linear_teacher<F: Float>(seed: u64, n: usize, d_in: usize, d_out: usize) -> Batch<F> {
    let mut r = rng(seed, Stream::Data);
    let x = Array2::<f64>::random_using((n, d_in), StandardNormal, &mut r);
    let teacher =
        Array2::<f64>::random_using((d_in, d_out), StandardNormal, &mut r) / (d_in as f64).sqrt();
    let y = x.dot(&teacher);
    Batch {
        x: x.mapv(F::of),
        y: y.mapv(F::of),
    }
}

/// The linear-teacher batch with targets for `loss`: `Y = X T` for MSE; for cross-entropy
/// each row's class `argmax_k (X T)_k`, one-hot (a linear classification problem with `d_out`
/// classes). `grad-norms` and `gradcheck` measure on it.
pub fn teacher_batch<F: Float>(
    loss: crate::config::Loss,
    seed: u64,
    n: usize,
    d_in: usize,
    d_out: usize,
) -> Batch<F> {
    let b = linear_teacher::<f64>(seed, n, d_in, d_out);
    let y = match loss {
        crate::config::Loss::Mse => b.y,
        crate::config::Loss::Ce => {
            let mut y = Array2::<f64>::zeros(b.y.dim());
            for (i, row) in b.y.rows().into_iter().enumerate() {
                y[[i, crate::ops::argmax(row)]] = 1.0;
            }
            y
        }
    };
    Batch {
        x: b.x.mapv(F::of),
        y: y.mapv(F::of),
    }
}

/// What the training commands learn: a seeded synthetic regression task, or an image
/// classification set (the shipped digits, or MNIST / Fashion-MNIST read from a directory).
/// Written as `linear`, `nonlinear`, `digits`, `mnist:DIR`, `fashion-mnist:DIR` on the command
/// line and in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// `Y = X T` with `X ~ N(0, 1)`, `T ~ N(0, 1/d_in)`: a linear model fits it exactly.
    Linear,
    /// A 2-D target lifted to the input width: `u ~ N(0, I_2)`, `x = u P` with
    /// `P ~ N(0, 1/2)` of shape `(2, d_in)` (so each input has variance about 1), and
    /// `y_k = sin(3 u_1 + k pi / d_out) cos(2 u_2)` for output `k`. No linear model can fit it
    /// (its best linear fit explains almost none of the variance), so it needs non-linearity.
    Nonlinear,
    /// The UCI handwritten digits shipped with bn-lab ([`images::digits`]): 8x8 images, 10
    /// classes, a fixed stratified split of 1437 / 360.
    Digits,
    /// MNIST's four IDX files in a directory (60000 / 10000 images of 28x28).
    Mnist(std::path::PathBuf),
    /// Fashion-MNIST, the same format and sizes.
    FashionMnist(std::path::PathBuf),
}

/// The sizes of an image set, as [`Task::shape`] reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    pub n_train: usize,
    pub n_test: usize,
    pub pixels: usize,
    pub classes: usize,
}

impl ImageShape {
    /// Bytes the set holds while the process runs ([`Task::images`] reads it once and keeps
    /// it): [`images::image_set_bytes`].
    pub fn bytes(&self) -> f64 {
        images::image_set_bytes(self.n_train, self.n_test, self.pixels)
    }
}

/// The image sets read so far, by task: each is read once per process and shared.
fn image_cache() -> &'static Mutex<HashMap<Task, Arc<ImageSet>>> {
    static CACHE: OnceLock<Mutex<HashMap<Task, Arc<ImageSet>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Image sets whose sizes [`Task::shape`] has read from their headers and which are not read
/// yet: [`read_pending_sets`] reads them.
fn pending_sets() -> &'static Mutex<Vec<Task>> {
    static PENDING: Mutex<Vec<Task>> = Mutex::new(Vec::new());
    &PENDING
}

/// Read every image set whose sizes have been taken from its headers ([`Task::shape`]) but
/// whose data are not read yet. A command calls this once its run has been checked against the
/// memory available, so no data is read for a run that is refused; an error here (a corrupt
/// body, a label of 10) is the one-line [`images::DataError`].
pub fn read_pending_sets() -> Result<(), DataError> {
    let tasks = std::mem::take(&mut *pending_sets().lock().expect("no panic holds the lock"));
    for task in tasks {
        task.images()?;
    }
    Ok(())
}

impl Task {
    /// Whether the targets are classes (one-hot rows) rather than real numbers.
    pub fn is_classification(&self) -> bool {
        !matches!(self, Task::Linear | Task::Nonlinear)
    }

    /// The image set of a classification task, standardised with its training split's
    /// statistics ([`images::standardise`]); read once per process and shared. `None` for the
    /// synthetic tasks. An unreadable directory is the one-line [`images::DataError`].
    pub fn images(&self) -> Result<Option<Arc<ImageSet>>, DataError> {
        if !self.is_classification() {
            return Ok(None);
        }
        let cache = image_cache();
        if let Some(set) = cache.lock().expect("no panic holds the lock").get(self) {
            return Ok(Some(set.clone()));
        }
        let mut set = match self {
            Task::Digits => images::digits(),
            Task::Mnist(dir) => images::read_idx_dir(dir, "mnist")?,
            Task::FashionMnist(dir) => images::read_idx_dir(dir, "fashion-mnist")?,
            Task::Linear | Task::Nonlinear => unreachable!("synthetic tasks returned above"),
        };
        images::standardise(&mut set);
        let set = Arc::new(set);
        cache
            .lock()
            .expect("no panic holds the lock")
            .insert(self.clone(), set.clone());
        Ok(Some(set))
    }

    /// Whether the image set is in memory already (read by [`Task::images`]).
    pub fn is_loaded(&self) -> bool {
        image_cache()
            .lock()
            .expect("no panic holds the lock")
            .contains_key(self)
    }

    /// The sizes of an image set; `None` for the synthetic tasks, whose sizes are the caller's.
    /// An IDX set's sizes come from its four headers, without reading its data, so that a run
    /// can be checked against the memory available before the set is read
    /// ([`crate::commands::execute`] reads it after that check).
    pub fn shape(&self) -> Result<Option<ImageShape>, DataError> {
        let (dir, what) = match self {
            Task::Mnist(dir) => (dir, "mnist"),
            Task::FashionMnist(dir) => (dir, "fashion-mnist"),
            _ => {
                return Ok(self.images()?.map(|set| ImageShape {
                    n_train: set.train.labels.len(),
                    n_test: set.test.labels.len(),
                    pixels: set.train.x.ncols(),
                    classes: set.classes,
                }));
            }
        };
        let (n_train, n_test, pixels) = images::read_idx_shape(dir, what)?;
        if !self.is_loaded() {
            let mut pending = pending_sets().lock().expect("no panic holds the lock");
            if !pending.contains(self) {
                pending.push(self.clone());
            }
        }
        Ok(Some(ImageShape {
            n_train,
            n_test,
            pixels,
            classes: images::IDX_CLASSES,
        }))
    }

    /// The task with its image directory made absolute (against the working directory, without
    /// resolving links), so that its spelling means the same from any directory.
    pub fn absolute(&self) -> Result<Task, String> {
        let abs = |d: &std::path::Path| {
            std::path::absolute(d)
                .map_err(|e| format!("cannot make '{}' absolute: {e}", d.display()))
                .and_then(|a| match a.to_str() {
                    Some(_) => Ok(a),
                    None => Err(format!("'{}' is not valid UTF-8", a.display())),
                })
        };
        Ok(match self {
            Task::Mnist(d) => Task::Mnist(abs(d)?),
            Task::FashionMnist(d) => Task::FashionMnist(abs(d)?),
            other => other.clone(),
        })
    }

    /// How the task is written on the command line and in JSON.
    pub fn spelling(&self) -> String {
        match self {
            Task::Linear => "linear".into(),
            Task::Nonlinear => "nonlinear".into(),
            Task::Digits => "digits".into(),
            Task::Mnist(dir) => format!("mnist:{}", dir.display()),
            Task::FashionMnist(dir) => format!("fashion-mnist:{}", dir.display()),
        }
    }
}

impl std::str::FromStr for Task {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let dir = |name: &str| match s.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
            Some("") | None => Err(format!(
                "{name} needs the directory of its four IDX files: {name}:DIR"
            )),
            Some(d) => Ok(std::path::PathBuf::from(d)),
        };
        match s {
            "linear" => Ok(Task::Linear),
            "nonlinear" | "non-linear" => Ok(Task::Nonlinear),
            "digits" => Ok(Task::Digits),
            _ if s.starts_with("mnist") => dir("mnist").map(Task::Mnist),
            _ if s.starts_with("fashion-mnist") => dir("fashion-mnist").map(Task::FashionMnist),
            _ => Err(format!(
                "unknown task '{s}' (expected linear, nonlinear, digits, mnist:DIR or fashion-mnist:DIR)"
            )),
        }
    }
}

impl Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.spelling())
    }
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Linear => "linear",
            Task::Nonlinear => "non-linear",
            Task::Digits => "digits",
            Task::Mnist(_) => "MNIST",
            Task::FashionMnist(_) => "Fashion-MNIST",
        })
    }
}

/// Train and test samples of one task; the same seed gives the same split.
#[derive(Clone, Debug)]
pub struct Dataset<T> {
    pub train: Batch<T>,
    pub test: Batch<T>,
    /// The number of classes of a classification task (targets are one-hot rows); `None` for
    /// regression.
    pub classes: Option<usize>,
}

/// Draw `n_train + n_test` samples of `task` from `seed` and split them. An image set is not
/// drawn: its fixed split is read ([`Task::images`]) and its first `n_train` / `n_test` images
/// taken, with one-hot targets; `seed`, `d_in` and `d_out` play no part (validation checked that
/// the set is readable and matches the network).
pub fn make_task<F: Float>(
    task: &Task,
    seed: u64,
    n_train: usize,
    n_test: usize,
    d_in: usize,
    d_out: usize,
) -> Dataset<F> {
    let n = n_train
        .checked_add(n_test)
        .expect("validated: n_train and n_test are at most limits::MAX_SAMPLES each");
    if let Some(set) = task
        .images()
        .expect("validated: DataSpec::validate read its headers, and commands::execute its data")
    {
        let take = |part: &images::Labelled, k: usize| Batch {
            x: part.x.slice(ndarray::s![..k, ..]).mapv(F::of),
            y: images::one_hot(&part.labels[..k], set.classes).mapv(F::of),
        };
        return Dataset {
            train: take(&set.train, n_train),
            test: take(&set.test, n_test),
            classes: Some(set.classes),
        };
    }
    let all: Batch<f64> = match task {
        Task::Digits | Task::Mnist(_) | Task::FashionMnist(_) => {
            unreachable!("image sets returned above")
        }
        Task::Linear => linear_teacher(seed, n, d_in, d_out),
        Task::Nonlinear => {
            let mut r = rng(seed, Stream::Data);
            let u = Array2::<f64>::random_using((n, 2), StandardNormal, &mut r);
            let p =
                Array2::<f64>::random_using((2, d_in), StandardNormal, &mut r) * (0.5f64).sqrt();
            let x = u.dot(&p);
            let y = Array2::from_shape_fn((n, d_out), |(i, k)| {
                let phase = k as f64 * std::f64::consts::PI / d_out as f64;
                (3.0 * u[[i, 0]] + phase).sin() * (2.0 * u[[i, 1]]).cos()
            });
            Batch { x, y }
        }
    };
    let split =
        |a: &Array2<f64>, lo: usize, hi: usize| a.slice(ndarray::s![lo..hi, ..]).mapv(F::of);
    Dataset {
        train: Batch {
            x: split(&all.x, 0, n_train),
            y: split(&all.y, 0, n_train),
        },
        test: Batch {
            x: split(&all.x, n_train, n),
            y: split(&all.y, n_train, n),
        },
        classes: None,
    }
}

/// Shuffled mini-batches without replacement: each epoch is a fresh permutation drawn from the
/// `Shuffle` stream of the seed. Rows are copied into caller-owned buffers (no allocation per step).
#[derive(Clone, Debug)]
pub struct Sampler {
    order: Vec<usize>,
    pos: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl Sampler {
    pub fn new(n: usize, seed: u64) -> Self {
        let mut s = Sampler {
            order: (0..n).collect(),
            pos: n,
            rng: rng(seed, Stream::Shuffle),
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order.shuffle(&mut self.rng);
        self.pos = 0;
    }

    /// Fill `x: (batch, d_in)` and `y: (batch, d_out)` with the next `batch` samples of `data`.
    /// A batch never straddles two epochs: the tail of an epoch smaller than a batch is skipped.
    pub fn next_into<F: Float>(
        &mut self,
        data: &Batch<F>,
        mut x: ArrayViewMut2<F>,
        mut y: ArrayViewMut2<F>,
    ) {
        let batch = x.nrows();
        if self.pos + batch > self.order.len() {
            self.reshuffle();
        }
        for (k, &i) in self.order[self.pos..self.pos + batch].iter().enumerate() {
            x.row_mut(k).assign(&data.x.index_axis(Axis(0), i));
            y.row_mut(k).assign(&data.y.index_axis(Axis(0), i));
        }
        self.pos += batch;
    }
}
