//! One module per experiment. Each has a config (`Serialize + Deserialize`, validated by its
//! own `validate()` whose errors name config fields), a `Serialize` report, a marker type
//! implementing [`Experiment`] (its name, how to run it and the summary it prints), and its
//! subcommand's flags implementing [`ExperimentArgs`] (how they become the config). Its plot
//! module implements [`crate::plot::Figures`] for the same marker type; one line in
//! [`crate::cli`]'s registry makes it a subcommand, and every front door (the CLI, `run`,
//! `reproduce`, the tests that go over all experiments) reads that registry.

pub mod bench;
pub mod grad_norms;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod shattered;
pub mod shift;
pub mod sweep;
pub mod theory;
pub mod train;
pub mod train_arm;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{Activation, ConfigError, Normaliser, at_least, distinct};
use crate::config::{check_points, points};
use crate::data::{self, Dataset, Stream};
use crate::flags::{MeasuredTrainArgs, NetArgs, OutputArgs, Renames};
use crate::float::Float;
use crate::memory::Footprint;
use crate::model::Mlp;
use crate::optim::PlainSgdSpec;
use crate::spec::{DataSpec, NetConfig, NetSpec};
use crate::stats::Num;
use crate::train::{DIVERGENCE_FACTOR, Observer, Trainer, fit, layer_names, step_units, units};

pub use crate::train::Progress;

/// A config seen as the plan of its run: checked, sized and counted before any of it runs.
/// `commands::execute` validates it, refuses it when its footprint is over
/// [`crate::memory::memory_limit_bytes`], and sizes the progress bar from its work units; the
/// experiment's `run` then executes the same config.
pub trait Plan {
    /// Check the config before anything is allocated; errors name config fields.
    fn validate(&self) -> Result<(), ConfigError>;
    /// What a run of the (validated) config holds at its peak: networks alive at once (as
    /// many run side by side as the current thread pool has threads), data, recorded numbers
    /// with their JSON and plot copies, figures.
    fn footprint(&self) -> Footprint;
    /// Units of work `run` reports to its progress callback (0: too quick for a bar): by
    /// default its jobs' units ([`Plan::costs`]); a run with work outside its jobs (`train`'s
    /// reference fit) adds it.
    fn work_units(&self) -> u64 {
        total_units(self.costs().iter().map(|c| c.units))
    }
    /// What each job `run` executes costs, in run order (a job: one unit of its parallel map,
    /// one network measured or trained). [`Plan::work_units`] and [`Plan::footprint`] are
    /// derived from the same jobs, so the tests check them against these.
    fn costs(&self) -> Vec<Cost>;
    /// About how many multiply-adds a run does (every pass of every network, or the
    /// quadrature's function evaluations), counted from the same jobs as [`Plan::costs`]: the
    /// same on every machine. `bn-lab serve` divides it by a measured rate to refuse, before
    /// any work, runs over its work limit ([`crate::serve::limits`]).
    fn macs(&self) -> f64;
}

/// What one call of a layer's kernels costs beyond its arithmetic (allocation, dispatch, the
/// small loops around it), in multiply-adds: measured on the reference machine as 0.7 us per
/// layer and call, with tiny networks (width 8) trained for many steps.
pub const LAYER_CALL_MACS: f64 = 22_000.0;

/// Multiply-adds of `units` work units in forward passes of one sample (the units of every
/// experiment that trains, see [`crate::train::FORWARD_BACKWARD`]) through `net`, run `rows`
/// samples at a time: its arithmetic, and [`LAYER_CALL_MACS`] per layer and call.
pub fn pass_macs(units: u64, net: &NetConfig, rows: usize) -> f64 {
    let calls = (net.layers() + 1) as f64 / rows.max(1) as f64;
    units as f64 * (crate::train::forward_macs(net) + LAYER_CALL_MACS * calls)
}

/// Multiply-adds of a training run whose jobs are `(units, net)` run `rows` samples at a time,
/// plus a reference fit of `reference_units` counted in forward passes of the largest network
/// (`train` and `nonlinearity`).
pub fn fit_macs<'a>(
    jobs: impl Iterator<Item = (u64, &'a NetConfig)> + Clone,
    rows: usize,
    reference_units: u64,
) -> f64 {
    let largest = jobs
        .clone()
        .map(|(_, net)| crate::train::forward_macs(net))
        .fold(1.0, f64::max);
    let runs: f64 = jobs.map(|(units, net)| pass_macs(units, net, rows)).sum();
    runs + reference_units as f64 * largest
}

/// What one job of a run costs: the progress units `run` reports for it, and the bytes its
/// network (with the copies it keeps, on the samples it runs) holds while it runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    pub units: u64,
    pub bytes: f64,
    /// Jobs of different passes never run at once (`ics` trains one learning rate after the
    /// other); most runs are one pass, 0.
    pub pass: usize,
}

impl Cost {
    /// A job of the run's only pass.
    pub fn new(units: u64, bytes: f64) -> Self {
        Cost {
            units,
            bytes,
            pass: 0,
        }
    }
}

/// What the networks of the jobs costing `costs` hold at most at once: in each pass, the
/// largest that run side by side ([`largest_alive`]); the largest pass.
pub fn alive_at_once(costs: &[Cost]) -> f64 {
    let passes = costs.iter().map(|c| c.pass).max().map_or(0, |p| p + 1);
    (0..passes)
        .map(|p| largest_alive(costs.iter().filter(|c| c.pass == p).map(|c| c.bytes)))
        .fold(0.0, f64::max)
}

/// Units of all `units`, added up (saturating): the jobs' part of [`Plan::work_units`].
pub fn total_units(units: impl IntoIterator<Item = u64>) -> u64 {
    units.into_iter().fold(0u64, u64::saturating_add)
}

/// What the networks of jobs costing `bytes` hold at most when as many of them run at once as
/// the current thread pool has threads ([`crate::parallel::side_by_side`]): the largest that
/// many, added up.
pub fn largest_alive(bytes: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = bytes.into_iter().collect();
    v.sort_by(|a, b| b.total_cmp(a));
    v.iter().take(crate::parallel::side_by_side(v.len())).sum()
}

/// An experiment the CLI (and experiment files) can run: its names, how to run its config and
/// the summary it prints. Checking, sizing and counting the run are its config's [`Plan`].
pub trait Experiment {
    /// The input: every number the run depends on, and its [`Plan`].
    type Config: Plan + Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The results: written to `<STEM>.json`, drawn, summarised.
    type Report: Serialize + Sync;
    /// The subcommand, e.g. `grad-norms`.
    const NAME: &'static str;
    /// Stem of the JSON file, e.g. `grad_norms`.
    const STEM: &'static str;
    /// Run the experiment. Values the config leaves open are resolved here and recorded in the
    /// report's config, so the report's config reruns to the same numbers.
    fn run(cfg: &Self::Config, progress: Progress) -> Self::Report;
    /// The stdout summary (table and verdict).
    fn summary(report: &Self::Report) -> String;
}

/// The flags of one experiment's subcommand (a clap `Args` struct declared in the experiment's
/// module) and the config they describe. [`crate::cli`]'s registry lists these types, one line
/// each; `commands::run_experiment` runs any of them the same way.
pub trait ExperimentArgs:
    clap::Args + clap::FromArgMatches + std::fmt::Debug + Send + Sync + 'static
{
    /// The experiment the flags configure.
    type Experiment: Experiment;
    /// The flags of a small run that finishes in well under a second (after the subcommand,
    /// separated by spaces): the tests that go over every experiment run it, and it shows a
    /// quick first result.
    const QUICK: &'static str;
    /// Config fields set by flags of another name (`("norms", "--norm")`); the others are
    /// `--` + the field with `-` for `_`. Errors name the flags through this.
    const RENAMES: Renames = &[];
    /// The config the flags describe, validated later by [`Plan::validate`]; an error
    /// here is a refusal that names the flag.
    fn config(&self) -> anyhow::Result<<Self::Experiment as Experiment>::Config>;
    /// Where the files go and what stdout shows.
    fn output(&self) -> &OutputArgs;
    /// `Some(--threads)` for the commands that have the flag (`Some(None)`: not given, so all
    /// cores); `None` runs on the thread pool the command is called in.
    fn threads(&self) -> Option<Option<usize>> {
        None
    }
    /// Files written beside the JSON and figures (`grad-norms --save-net`).
    fn extras(&self) -> Vec<Extra<<Self::Experiment as Experiment>::Report>> {
        Vec::new()
    }
}

/// A file a command writes besides its JSON and figures: its path, the flag that named it (for
/// errors), and its bytes drawn from the report.
pub struct Extra<R> {
    pub path: std::path::PathBuf,
    /// The flag the path came from, for error messages.
    pub flag: &'static str,
    pub bytes: fn(&R) -> anyhow::Result<Vec<u8>>,
}

/// Which tool and version produced a results file.
#[derive(Clone, Debug, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The training runs `landscape`, `ics`, `noisy-bn` and `input-shift` measure while they
/// train: one per normalisation arm, from the same weights on the same batches, plain SGD
/// ([`PlainSgdSpec`]: no momentum, so one step moves the weights by exactly `-lr_t * g`,
/// `lr_t = lr` after the optional linear warmup).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredTrainConfig {
    pub depth: usize,
    pub act: Activation,
    /// The arms, in legend order.
    pub norms: Vec<Normaliser>,
    #[serde(flatten)]
    pub net: NetSpec,
    #[serde(flatten)]
    pub data: DataSpec,
    /// Steps, learning rate and warmup (JSON keys `steps`, `lr`, `warmup_steps`).
    #[serde(flatten)]
    pub sgd: PlainSgdSpec,
    /// Measure at steps 0, every, 2 every, ...
    pub every: usize,
}

impl MeasuredTrainConfig {
    /// The training runs the flags of `landscape`, `ics`, `noisy-bn` and `input-shift`
    /// describe.
    pub fn from_flags(t: &MeasuredTrainArgs, net: &NetArgs) -> anyhow::Result<Self> {
        t.arms.check_distinct()?;
        let (spec, data) = t.data.specs_with(net, (4096, 1024))?;
        Ok(MeasuredTrainConfig {
            depth: t.depth,
            act: net.activation(),
            norms: t.arms.norms(net),
            net: spec,
            data,
            sgd: PlainSgdSpec {
                steps: t.steps,
                lr: t.lr,
                warmup_steps: t.warmup_steps,
            },
            every: t.every,
        })
    }

    /// The network of one arm.
    pub fn net(&self, norm: Normaliser) -> NetConfig {
        self.net.net(self.depth, self.act, norm)
    }

    /// Check the training fields and every arm's network (memory is the caller's footprint:
    /// it knows how many copies it keeps).
    pub fn validate(&self) -> Result<(), ConfigError> {
        distinct("norms", &self.norms)?;
        self.net.validate()?;
        self.sgd.validate(1)?;
        at_least("every", 1, self.every)?;
        check_points("every", "steps", self.sgd.steps, self.every)?;
        self.data
            .validate(self.net.batch, self.net.d_in, self.net.d_out)?;
        for &norm in &self.norms {
            self.net(norm).validate(self.net.batch)?;
        }
        Ok(())
    }

    /// The arm of `norm` as a job of `run`'s parallel map: it reports `units` (its
    /// [`MeasuredTrainConfig::arm_units`] and what the experiment adds) and holds `copies`
    /// networks on up to `samples` samples each.
    pub fn arm_job(&self, norm: Normaliser, units: u64, samples: usize, copies: usize) -> ArmJob {
        let net = self.net(norm);
        ArmJob {
            norm,
            units,
            bytes: copies as f64 * net.memory_estimate_bytes(samples, self.net.dtype.bytes()),
            net,
        }
    }

    /// What every measured run holds: per arm (all of `jobs` train at once, and an arm's
    /// nested parallel work may start another), its data set, its networks (the job's bytes),
    /// the per-step loss and `per_point` numbers at every measured step; and the figures.
    pub fn footprint(&self, jobs: &[ArmJob], per_point: f64) -> Footprint {
        let arms = jobs.len();
        let mut fp = self
            .data
            .footprint(Footprint::new(), &self.net, arms, arms, false);
        for job in jobs {
            fp = fp.add("networks", job.bytes, &["depth", "width", "batch"]);
        }
        let measured = points(self.sgd.steps, self.every) as f64;
        fp.records(
            arms as f64 * (self.sgd.steps as f64 + measured * per_point),
            &["steps", "every", "depth"],
        )
        .figures()
    }

    /// The data every arm trains on (the `Data` stream of the seed).
    pub fn dataset<T: Float>(&self) -> Dataset<T> {
        data::make_task(
            &self.data.task,
            self.net.seed,
            self.data.n_train,
            self.data.n_test,
            self.net.d_in,
            self.net.d_out,
        )
    }

    /// One arm's network as initialised: every arm draws the same weights (the `Weights` stream
    /// of the seed; BN draws no random numbers).
    pub fn initial_net<T: Float>(&self, norm: Normaliser) -> Mlp<T> {
        Mlp::new(
            &self.net(norm),
            &mut data::rng(self.net.seed, Stream::Weights),
        )
    }

    /// `8 x 128 relu (he init), non-linear task, batch 128, lr 0.01, 400 steps, seed 0, f32`
    /// (with warmup: `lr 0.01, 20 warmup steps, 400 steps`).
    pub fn title(&self) -> String {
        format!(
            "{} x {} {}{} ({} init), {} task, batch {}, lr {}{}, {} steps, seed {}, {}",
            self.depth,
            self.net.width,
            self.act,
            crate::spec::residual_label(self.net.residual, self.net.residual_scale)
                .map_or(String::new(), |r| format!(" {r}")),
            self.net.init.resolve(self.act),
            self.data.task,
            self.net.batch,
            crate::stats::Short(self.sgd.lr),
            crate::optim::warmup_label(self.sgd.warmup_steps)
                .map_or(String::new(), |w| format!(", {w}")),
            self.sgd.steps,
            self.net.seed,
            self.net.dtype,
        )
    }

    /// Steps measured by a run that does not diverge: 0, every, 2 every, ... below `steps`.
    pub fn measurements(&self) -> usize {
        self.sgd.steps.div_ceil(self.every.max(1))
    }

    /// Work units [`MeasuredTrainConfig::train_measured`] reports for one arm whose
    /// measurements cost `measure_units` each (in forward passes of one sample, see
    /// [`crate::train::FORWARD_BACKWARD`]): every step, every measurement and the final test loss.
    pub fn arm_units(&self, measure_units: u64) -> u64 {
        units(self.sgd.steps, step_units(self.net.batch))
            .saturating_add(units(self.measurements(), measure_units))
            .saturating_add(self.data.n_test as u64)
    }

    /// Train `net` (an arm with normalisation `norm`) on `data` with plain SGD by [`fit`],
    /// calling `measure(trainer, step, loss)` at steps 0, every, 2 every, ... after the backward
    /// pass and before the update (the trainer holds that step's batch and gradients). Stops at
    /// a divergence. `progress` is told of each step, of `measure_units` per measurement and of
    /// the final test loss, [`MeasuredTrainConfig::arm_units`] in all (measurements a divergence
    /// cuts off are counted at it). Returns what every arm reports.
    pub fn train_measured<T: Float>(
        &self,
        norm: Normaliser,
        net: &mut Mlp<T>,
        data: &Dataset<T>,
        progress: Progress,
        measure_units: u64,
        measure: impl FnMut(&mut Trainer<'_, T>, usize, f64),
    ) -> TrainedArm {
        let mut tr = Trainer::new(
            net,
            data,
            self.sgd.sgd(),
            self.net.batch,
            self.net.seed,
            self.data.loss,
        );
        let mut observer = Measured {
            every: self.every,
            train_loss: Vec::with_capacity(self.sgd.steps),
            measure,
            progress,
            measure_units,
            measured: 0,
            planned: self.measurements(),
        };
        let divergence = fit(
            &mut tr,
            self.sgd.steps,
            DIVERGENCE_FACTOR,
            progress,
            &mut observer,
        );
        let test = crate::train::evaluate(tr.net, &data.test, self.net.batch, self.data.loss);
        progress.units(self.data.n_test as u64);
        TrainedArm {
            label: norm.label().to_string(),
            norm,
            net: self.net(norm),
            train_loss: observer.train_loss,
            diverged_at: divergence.map(|d| d.step),
            final_test_loss: Num(test.loss),
            final_test_accuracy: data.classes.map(|_| Num(test.accuracy)),
        }
    }

    /// Layer names: `1` .. `depth`, then `out`.
    pub fn layer_names(&self) -> Vec<String> {
        layer_names(self.depth)
    }
}

/// One arm of a measured training run (`landscape`, `ics`, `noisy-bn`, `input-shift`): what
/// `run` trains in its parallel map ([`MeasuredTrainConfig::arm_job`]).
#[derive(Clone, Debug)]
pub struct ArmJob {
    pub norm: Normaliser,
    pub net: NetConfig,
    /// Progress units the arm reports.
    pub units: u64,
    /// Its networks' memory: the training net and the copies it keeps.
    pub bytes: f64,
}

impl ArmJob {
    pub fn cost(&self) -> Cost {
        Cost::new(self.units, self.bytes)
    }

    /// Multiply-adds of the arm's passes (its steps, measurements and evaluations), `rows`
    /// samples at a time ([`pass_macs`]).
    pub fn macs(&self, rows: usize) -> f64 {
        pass_macs(self.units, &self.net, rows)
    }
}

/// Records every step's mini-batch loss and hands the trainer to `measure` every `every` steps,
/// telling `progress` of `measure_units` per measurement (and at a divergence, of the
/// measurements it cut off).
struct Measured<'p, F> {
    every: usize,
    train_loss: Vec<Num>,
    measure: F,
    progress: Progress<'p>,
    measure_units: u64,
    measured: usize,
    planned: usize,
}

impl<T: Float, F: FnMut(&mut Trainer<'_, T>, usize, f64)> Observer<T> for Measured<'_, F> {
    fn after_forward(&mut self, _tr: &mut Trainer<'_, T>, _step: usize, loss: f64) {
        self.train_loss.push(Num(loss));
    }

    fn diverged(&mut self, _tr: &mut Trainer<'_, T>, _d: &crate::train::Divergence) {
        let skipped = self.planned.saturating_sub(self.measured);
        self.progress.units(units(skipped, self.measure_units));
    }

    fn before_update(&mut self, tr: &mut Trainer<'_, T>, step: usize, loss: f64) {
        if step % self.every == 0 {
            (self.measure)(tr, step, loss);
            self.measured += 1;
            self.progress.units(self.measure_units);
        }
    }
}

/// What every measured training run reports, whatever it measured (flattened into the arms of
/// `landscape.json` and `ics.json`).
#[derive(Clone, Debug, Serialize)]
pub struct TrainedArm {
    /// `BN off`, `BN on`, `BN, no affine`, ... ([`Normaliser::label`]).
    pub label: String,
    pub norm: Normaliser,
    pub net: NetConfig,
    /// Loss of each step's mini-batch before its update (train mode).
    pub train_loss: Vec<Num>,
    /// Step at which the loss became inf/NaN or grew 1e6-fold (training stopped there).
    pub diverged_at: Option<usize>,
    /// Test loss after training, BN in eval mode (running statistics).
    pub final_test_loss: Num,
    /// Test accuracy after training (classification tasks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<Num>,
}

/// Why a config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not the config's shape: a missing field, a wrong type, an unknown variant.
    #[error("{0}")]
    Shape(#[from] serde_json::Error),
    /// A key the config does not have (a typo would otherwise be ignored silently).
    #[error("unknown field '{0}'")]
    UnknownField(String),
}

/// Read a config of type `C` from JSON (a run's `config`, or a file), refusing unknown keys.
/// serde's `deny_unknown_fields` does not work with the flattened [`NetSpec`], so the config
/// is written back and every key of the input must appear in it. The caller validates.
pub fn load_config<C: Serialize + DeserializeOwned>(v: &serde_json::Value) -> Result<C, LoadError> {
    let cfg: C = serde_json::from_value(v.clone())?;
    let back = serde_json::to_value(&cfg)?;
    match unknown_key(v, &back, "") {
        Some(key) => Err(LoadError::UnknownField(key)),
        None => Ok(cfg),
    }
}

/// The first key path of `given` missing from `known` (objects compared key by key).
fn unknown_key(given: &serde_json::Value, known: &serde_json::Value, path: &str) -> Option<String> {
    let (serde_json::Value::Object(g), serde_json::Value::Object(k)) = (given, known) else {
        return None;
    };
    g.iter().find_map(|(key, gv)| {
        let p = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match k.get(key) {
            None => Some(p),
            Some(kv) => unknown_key(gv, kv, &p),
        }
    })
}
