//! [`TrainArm`]: one configuration `bn-lab train` compares, a normaliser with or without
//! SkipInit (De & Smith 2020). `--configs off,on,layer,skip-init` lists the four arms of
//! issue 31's deep pre-activation ResNet: no normalisation, BatchNorm, LayerNorm and SkipInit
//! without normalisation, each its own arm beside the others from the same seed.
//!
//! Text form: a [`Normaliser`]'s name (`off`, `on`, `layer`, ...), `skip-init` for SkipInit
//! without a normaliser, and `NAME+skip-init` (`on+skip-init`) for both. It is the JSON form
//! of `train`'s `norms` too, so files written before SkipInit read as before.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Normaliser};

/// A normaliser, and whether every residual branch carries SkipInit's learnable gain `alpha`
/// (from 0). SkipInit needs a standard block (`--block basic|preact`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrainArm {
    pub norm: Normaliser,
    pub skip_init: bool,
}

/// The text form's suffix for SkipInit.
const SKIP: &str = "skip-init";

impl TrainArm {
    /// The normaliser alone.
    pub const fn plain(norm: Normaliser) -> TrainArm {
        TrainArm {
            norm,
            skip_init: false,
        }
    }

    /// The normaliser with SkipInit.
    pub const fn skip_init(norm: Normaliser) -> TrainArm {
        TrainArm {
            norm,
            skip_init: true,
        }
    }

    /// No normaliser, no SkipInit.
    pub const OFF: TrainArm = TrainArm::plain(Normaliser::Off);
    /// SkipInit without a normaliser (De & Smith's "SkipInit").
    pub const SKIP_INIT: TrainArm = TrainArm::skip_init(Normaliser::Off);

    /// Every arm: each normaliser alone, then each with SkipInit.
    pub const ALL: [TrainArm; 18] = {
        let mut out = [TrainArm::OFF; 18];
        let mut i = 0;
        while i < 9 {
            out[i] = TrainArm::plain(Normaliser::ALL[i]);
            out[i + 9] = TrainArm::skip_init(Normaliser::ALL[i]);
            i += 1;
        }
        out
    };

    /// `on`, `skip-init`, `on+skip-init`.
    pub fn name(self) -> String {
        match (self.skip_init, self.norm) {
            (false, n) => n.name().to_string(),
            (true, Normaliser::Off) => SKIP.to_string(),
            (true, n) => format!("{}+{SKIP}", n.name()),
        }
    }

    /// The legend and table label: the normaliser's (`BN on`), `SkipInit` (without a
    /// normaliser), `BN on + SkipInit`.
    pub fn label(self) -> String {
        match (self.skip_init, self.norm) {
            (false, n) => n.label().to_string(),
            (true, Normaliser::Off) => "SkipInit".to_string(),
            (true, n) => format!("{} + SkipInit", n.label()),
        }
    }
}

impl fmt::Display for TrainArm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for TrainArm {
    type Err = String;

    /// A normaliser's name (or alias), `skip-init` (also `skipinit`), or `NAME+skip-init`.
    ///
    /// ```
    /// use bn_lab::config::Normaliser;
    /// use bn_lab::experiment::train_arm::TrainArm;
    /// assert_eq!("skip-init".parse(), Ok(TrainArm::SKIP_INIT));
    /// assert_eq!("off+skip-init".parse(), Ok(TrainArm::SKIP_INIT));
    /// assert_eq!("batch+skipinit".parse(), Ok(TrainArm::skip_init(Normaliser::BN)));
    /// assert_eq!("layer".parse(), Ok(TrainArm::plain(Normaliser::LN)));
    /// assert_eq!(TrainArm::skip_init(Normaliser::BN).to_string(), "on+skip-init");
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let is_skip = |w: &str| w == SKIP || w == "skipinit";
        if is_skip(s) {
            return Ok(TrainArm::SKIP_INIT);
        }
        let (norm, skip_init) = match s.split_once('+') {
            Some((n, w)) if is_skip(w) => (n, true),
            Some(_) => {
                return Err(format!(
                    "unknown configuration '{s}' (a normaliser, skip-init, or NORMALISER+skip-init such as on+skip-init)"
                ));
            }
            None => (s, false),
        };
        let norm: Normaliser = norm.parse().map_err(|e: String| {
            format!("{e}; or skip-init, or NORMALISER+skip-init such as on+skip-init")
        })?;
        Ok(TrainArm { norm, skip_init })
    }
}

impl Serialize for TrainArm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for TrainArm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl clap::ValueEnum for TrainArm {
    fn value_variants<'a>() -> &'a [Self] {
        &TrainArm::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let base = self.norm.to_possible_value()?;
        if !self.skip_init {
            return Some(base);
        }
        let help = match self.norm {
            Normaliser::Off => "SkipInit without normalisation: a learnable gain from 0 on every residual branch (needs --block basic|preact)".to_string(),
            n => format!("{} and SkipInit", n.label()),
        };
        let v = clap::builder::PossibleValue::new(skip_name(self.norm)).help(help);
        Some(match self.norm {
            Normaliser::Off => v.aliases(["skipinit", "off+skip-init", "none+skip-init"]),
            Normaliser::BN => v.aliases(["batch+skip-init", "affine+skip-init"]),
            _ => v,
        })
    }
}

/// [`TrainArm::name`] of `norm` with SkipInit, as clap's `'static` text.
fn skip_name(norm: Normaliser) -> &'static str {
    match norm.name() {
        "off" => "skip-init",
        "on" => "on+skip-init",
        "no-affine" => "no-affine+skip-init",
        "post" => "post+skip-init",
        "post-no-affine" => "post-no-affine+skip-init",
        "layer" => "layer+skip-init",
        "layer-no-affine" => "layer-no-affine+skip-init",
        "layer-post" => "layer-post+skip-init",
        _ => "layer-post-no-affine+skip-init",
    }
}

/// [`crate::config::distinct_norms`] for configurations: a repeat is named with every spelling
/// (`'skip-init' (also written 'skipinit' or ...) is given twice`).
pub fn distinct_arms(field: &'static str, v: &[TrainArm]) -> Result<(), ConfigError> {
    crate::config::distinct_spelt(field, v)
}
