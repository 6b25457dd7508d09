//! `bn-lab theory`: the mean-field predictions of [`crate::theory`] as a table for the board:
//! Yang et al.'s `lambda(B)` per activation and batch size (BN before the activation), and the
//! no-BN variance map `q^l`, backward factor `chi^l` and profile per layer. No network is built
//! and no data drawn: quadrature only.

use serde::{Deserialize, Serialize};

use crate::config::{Activation, ConfigError, Init, at_most_values, between, distinct, finite_in};
use crate::experiment::ExperimentArgs;
use crate::experiment::grad_norms::INPUT_SECOND_MOMENT;
use crate::experiment::{Cost, Experiment, Plan, Progress, ToolInfo};
use crate::flags::{OutputArgs, Renames, count, parse_init};
use crate::limits::{MAX_BATCH, MAX_DEPTH, MAX_WIDTH};
use crate::memory::Footprint;
use crate::spec::NetConfig;
use crate::stats::{Num, fmt_num, fmt_rate};
use crate::theory as mf;
use clap::Args;

/// The largest `input_second_moment`.
const MAX_INPUT_MOMENT: f64 = 1e3;

/// At most this many batch sizes (table columns and points of the figure).
pub const MAX_BATCHES: usize = 64;

/// A validated `theory` configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TheoryConfig {
    pub acts: Vec<Activation>,
    /// Batch sizes of the BN rate `lambda(B)` (each at least 4).
    pub batches: Vec<usize>,
    /// The no-BN variance map: hidden layers, their width, the input dimension and the
    /// initialisation (`auto`: He for (leaky) ReLU, Xavier otherwise).
    pub depth: usize,
    pub width: usize,
    pub d_in: usize,
    pub init: Init,
    /// `E[x^2]` of the inputs (1 for the `grad-norms` batch, `x ~ N(0, 1)`).
    pub input_second_moment: f64,
}

/// Evaluations of `phi` in one [`crate::theory::sphere_moments`]: one coordinate on 2 x 16
/// panels of 20 nodes, two on up to 6 arcs of 20 nodes times 16 x 20 radii, two each.
pub const SPHERE_EVALS: f64 = 640.0 + 2.0 * 6.0 * 20.0 * 320.0;
/// Evaluations in one [`crate::theory::gaussian_mean`]: about 14 halving panels of 20 nodes, two each.
pub const GAUSSIAN_MEAN_EVALS: f64 = 2.0 * 14.0 * 20.0;
/// Multiply-adds one evaluation of an activation and its weight stands for (an `exp`, a `ln`,
/// and the loops around them): measured against grad-norms's passes on the reference machine.
pub const PHI_MACS: f64 = 270.0;

impl Plan for TheoryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        distinct("acts", &self.acts)?;
        distinct("batches", &self.batches)?;
        at_most_values("batches", MAX_BATCHES, &self.batches)?;
        for &b in &self.batches {
            between("batches", 4, MAX_BATCH, b)?;
        }
        between("depth", 1, MAX_DEPTH, self.depth)?;
        between("width", 1, MAX_WIDTH, self.width)?;
        between("d_in", 1, MAX_WIDTH, self.d_in)?;
        finite_in(
            "input_second_moment",
            "> 0 and at most 1000",
            self.input_second_moment,
            |v| v > 0.0 && v <= MAX_INPUT_MOMENT,
        )
    }

    /// Per activation: the rates (three numbers per batch size) and four numbers per layer;
    /// no network, no data; one figure.
    fn footprint(&self) -> Footprint {
        let per_act = 3.0 * self.batches.len() as f64 + 4.0 * self.depth as f64;
        Footprint::new()
            .records(self.acts.len() as f64 * per_act, &["depth", "acts"])
            .figures()
    }

    /// No network and no parallel map: every rate and variance map is a job of one unit that
    /// holds nothing but its records (counted in the footprint's records).
    fn costs(&self) -> Vec<Cost> {
        vec![Cost::new(1, 0.0); self.acts.len() * (self.batches.len() + 1)]
    }

    /// Function evaluations of the quadratures, at [`PHI_MACS`] each: per activation, the
    /// sphere moments of every batch size, the large-batch limit, and the variance map's two
    /// Gaussian means per layer (at most: it stops at its fixed point).
    fn macs(&self) -> f64 {
        let per_act = self.batches.len() as f64 * SPHERE_EVALS
            + (3.0 + 2.0 * self.depth as f64) * GAUSSIAN_MEAN_EVALS;
        self.acts.len() as f64 * per_act * PHI_MACS
    }
}

impl TheoryConfig {
    /// The network whose variance map is computed for `act`.
    pub fn net(&self, act: Activation) -> NetConfig {
        NetConfig {
            d_in: self.d_in,
            width: self.width,
            d_out: 1,
            depth: self.depth,
            act,
            init: self.init.resolve(act),
            norm: None,
            residual: false,
            residual_scale: 1.0,
            block: None,
            skip_init: false,
        }
    }
}

/// `lambda(B)` of one activation.
#[derive(Clone, Debug, Serialize)]
pub struct BnRates {
    pub act: Activation,
    /// `lambda(B)` per batch size of the config, in its order.
    pub lambda: Vec<Num>,
    /// Where a closed form exists (ReLU: Yang et al.'s; linear: `(B - 2)/(B - 3)`), its value
    /// per batch size, so the general quadrature can be compared with it.
    pub closed_form: Option<Vec<Num>>,
    /// `E[phi'(z)^2] / Var[phi(z)]`: the rate as `B -> inf`.
    pub large_batch_limit: Num,
}

/// The no-BN map of one activation, per hidden layer `l = 1..depth`.
#[derive(Clone, Debug, Serialize)]
pub struct NoBnMap {
    pub act: Activation,
    /// The initialisation `auto` resolved to.
    pub init: Init,
    pub q: Vec<Num>,
    pub chi: Vec<Num>,
    /// `||dL/dh_l||^2 / ||dL/dh_L||^2` predicted.
    pub profile: Vec<Num>,
    /// `exp(-slope)` of `ln profile` against `l` (as `grad-norms` fits it).
    pub rate: Num,
}

#[derive(Clone, Debug, Serialize)]
pub struct TheoryReport {
    pub tool: ToolInfo,
    pub config: TheoryConfig,
    pub bn: Vec<BnRates>,
    pub no_bn: Vec<NoBnMap>,
}

pub fn run(cfg: &TheoryConfig, progress: Progress) -> TheoryReport {
    let bn = cfg
        .acts
        .iter()
        .map(|&act| {
            let lambda = cfg
                .batches
                .iter()
                .map(|&b| {
                    let l = mf::bn_rate(act, b).expect("batches are validated to be >= 4");
                    progress.units(1);
                    Num(l)
                })
                .collect();
            let closed: Option<fn(usize) -> f64> = match act {
                Activation::Relu => Some(mf::relu_bn_rate),
                Activation::Linear => Some(|b| (b as f64 - 2.0) / (b as f64 - 3.0)),
                _ => None,
            };
            let closed_form = closed.map(|f| cfg.batches.iter().map(|&b| Num(f(b))).collect());
            BnRates {
                act,
                lambda,
                closed_form,
                large_batch_limit: Num(mf::bn_rate_large_batch(act)),
            }
        })
        .collect();
    let no_bn = cfg
        .acts
        .iter()
        .map(|&act| {
            let net = cfg.net(act);
            let p = mf::predict(&net, 1, cfg.input_second_moment)
                .expect("a plain network without BN always has a prediction");
            progress.units(1);
            NoBnMap {
                act,
                init: net.init,
                q: p.q.unwrap_or_default(),
                chi: p.chi.unwrap_or_default(),
                profile: p.profile,
                rate: p.rate,
            }
        })
        .collect();
    TheoryReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        bn,
        no_bn,
    }
}

/// Layers shown in the per-layer table: every one up to 60, else 1-5 and about 20 more spread
/// geometrically, and the last.
fn shown_layers(depth: usize) -> Vec<usize> {
    if depth <= 60 {
        return (1..=depth).collect();
    }
    let mut v: Vec<usize> = (1..=5).collect();
    let mut l = 5.0_f64;
    while (l as usize) < depth {
        l *= 1.4;
        v.push((l as usize).min(depth));
    }
    v.push(depth);
    v.dedup();
    v
}

/// The largest relative difference between the quadrature's `lambda(B)` and the closed form,
/// over the batch sizes; `None` where the activation has no closed form.
pub fn closed_form_disagreement(r: &BnRates) -> Option<f64> {
    let closed = r.closed_form.as_ref()?;
    Some(
        r.lambda
            .iter()
            .zip(closed)
            .map(|(a, b)| ((a.0 - b.0) / b.0).abs())
            .fold(0.0, f64::max),
    )
}

/// The stdout summary: the BN rates (with [`closed_form_disagreement`]) and the no-BN maps.
pub fn summary(report: &TheoryReport) -> String {
    let cfg = &report.config;
    let mut out = String::from(
        "theory: mean-field predictions at infinite width (quadrature only: no network is built)\n\n",
    );
    out.push_str(
        "BN before the activation: lambda(B) = factor per layer by which |dL/dh_l|^2 grows towards the input\n\
         (Yang et al. 2019, 'A Mean Field Theory of Batch Normalization'; the same for every init and width)\n",
    );
    out.push_str(&format!("{:<11}", "act"));
    for b in &cfg.batches {
        out.push_str(&format!("{:>9}", format!("B={b}")));
    }
    out.push_str(&format!("{:>9}\n", "B->inf"));
    for r in &report.bn {
        out.push_str(&format!("{:<11}", r.act.name()));
        for l in &r.lambda {
            out.push_str(&format!("{:>9}", fmt_rate(l.0)));
        }
        out.push_str(&format!("{:>9}\n", fmt_rate(r.large_batch_limit.0)));
    }
    for r in &report.bn {
        if let Some(worst) = closed_form_disagreement(r) {
            out.push_str(&format!(
                "  {}: the closed form ({}) agrees to a relative {:.0e}\n",
                r.act,
                if r.act == Activation::Relu {
                    "Yang et al.'s arc-cosine formula"
                } else {
                    "(B - 2)/(B - 3)"
                },
                worst.max(1e-16)
            ));
        }
    }
    out.push_str(&format!(
        "\nNo BN: variance map q^l and backward factor chi^l, width {}, d_in {}, depth {}, E[x^2] = {}\n\
         (Poole et al. 2016; Schoenholz et al. 2017; zero biases; |dL/dh_{{l-1}}|^2 = chi^l |dL/dh_l|^2)\n",
        cfg.width, cfg.d_in, cfg.depth, crate::stats::Short(cfg.input_second_moment)
    ));
    out.push_str(&format!(
        "{:<11}{:>9}{:>11}{:>11}{:>11}\n",
        "act", "init", "rate", "q^L", "chi^L"
    ));
    for m in &report.no_bn {
        out.push_str(&format!(
            "{:<11}{:>9}{:>11}{:>11}{:>11}\n",
            m.act.name(),
            m.init.to_string(),
            fmt_rate(m.rate.0),
            fmt_num(m.q[m.q.len() - 1].0),
            fmt_rate(m.chi[m.chi.len() - 1].0)
        ));
    }
    out.push_str("\nper layer: q^l / chi^l\n");
    out.push_str(&format!("{:>6}", "l"));
    for m in &report.no_bn {
        out.push_str(&format!("{:>22}", m.act.name()));
    }
    out.push('\n');
    for l in shown_layers(cfg.depth) {
        out.push_str(&format!("{l:>6}"));
        for m in &report.no_bn {
            out.push_str(&format!(
                "{:>22}",
                format!("{} / {}", fmt_num(m.q[l - 1].0), fmt_rate(m.chi[l - 1].0))
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "rate = exp(-slope) of ln prod_{k>l} chi^k against l over layers 1..L (grad-norms fits its measured curves the same way)\n",
    );
    out
}

/// `bn-lab theory`.
pub struct Theory;

impl Experiment for Theory {
    type Config = TheoryConfig;
    type Report = TheoryReport;
    const NAME: &'static str = "theory";
    const STEM: &'static str = "theory";

    fn run(cfg: &TheoryConfig, progress: Progress) -> TheoryReport {
        run(cfg, progress)
    }

    fn summary(report: &TheoryReport) -> String {
        summary(report)
    }
}

// The command line: the flags of `bn-lab theory` and the config they describe.

/// Mean-field theory for the board: Yang et al.'s lambda(B) per activation and batch size
/// (BN before the activation) and the no-BN variance map q^l / chi^l per layer. Quadrature
/// only, no network. Writes theory.png and theory.json.
// Flags of `bn-lab theory`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct TheoryArgs {
    /// Activations, comma-separated (sigmoid, tanh, relu, leaky-relu, linear).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sigmoid,tanh,relu,leaky-relu,linear"
    )]
    pub acts: Vec<Activation>,
    /// Batch sizes B of the BN rate lambda(B), comma-separated (each at least 4).
    #[arg(allow_hyphen_values = true, value_parser = count::<4, MAX_BATCH>, long, value_delimiter = ',', default_value = "4,5,6,8,16,32,64,128,256,1024")]
    pub batch: Vec<usize>,
    /// Hidden layers of the no-BN variance map.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 50)]
    pub depth: usize,
    /// Width of the no-BN network.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long, default_value_t = 256)]
    pub width: usize,
    /// Input dimension of the no-BN network [default: the width].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long)]
    pub d_in: Option<usize>,
    /// Weight initialisation of the no-BN network (as grad-norms: he, xavier, lecun,
    /// normal:STD or auto).
    #[arg(long, default_value = "xavier", value_parser = parse_init)]
    pub init: Init,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExperimentArgs for TheoryArgs {
    type Experiment = Theory;
    const QUICK: &'static str = "--acts tanh,relu --batch 4,9 --depth 7 --width 32";
    const RENAMES: Renames = &[("batches", "--batch")];
    fn config(&self) -> anyhow::Result<TheoryConfig> {
        Ok(TheoryConfig {
            acts: self.acts.clone(),
            batches: self.batch.clone(),
            depth: self.depth,
            width: self.width,
            d_in: self.d_in.unwrap_or(self.width),
            init: self.init,
            input_second_moment: INPUT_SECOND_MOMENT,
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}
