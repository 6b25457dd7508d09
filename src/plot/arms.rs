//! How every experiment's figures show its arms (one network configuration each): one colour
//! and one marker shape per normaliser, the same in every figure, and the legend line of the
//! arms' test accuracies.

use plotters::style::RGBColor;

use super::chart::{LegendItem, Marker, okabe_ito};

/// One colour per normalisation arm, the same in every figure: BN off vermillion, the BN arms
/// in the palette's blues, green and purple, LayerNorm orange (black after the activation).
pub fn norm_color(norm: crate::config::Normaliser) -> RGBColor {
    use crate::config::{NormKind, Placement};
    match norm.parts() {
        None => okabe_ito::VERMILLION,
        Some((NormKind::Batch, true, Placement::Pre)) => okabe_ito::BLUE,
        Some((NormKind::Batch, false, Placement::Pre)) => okabe_ito::SKY_BLUE,
        Some((NormKind::Batch, true, Placement::Post)) => okabe_ito::BLUISH_GREEN,
        Some((NormKind::Batch, false, Placement::Post)) => okabe_ito::REDDISH_PURPLE,
        Some((NormKind::Layer, _, Placement::Pre)) => okabe_ito::ORANGE,
        Some((NormKind::Layer, _, Placement::Post)) => okabe_ito::BLACK,
    }
}

/// One marker shape per normalisation arm, the second channel beside [`norm_color`]: BN off
/// squares, BN (pre, with scale/shift) circles, the other BN variants triangles and diamonds,
/// LayerNorm crosses (diamonds without scale/shift).
pub fn norm_marker(norm: crate::config::Normaliser) -> Marker {
    use crate::config::{NormKind, Placement};
    match norm.parts() {
        None => Marker::Square,
        Some((NormKind::Batch, true, Placement::Pre)) => Marker::Circle,
        Some((NormKind::Batch, false, Placement::Pre)) => Marker::Diamond,
        Some((NormKind::Batch, true, Placement::Post)) => Marker::TriangleUp,
        Some((NormKind::Batch, false, Placement::Post)) => Marker::TriangleDown,
        Some((NormKind::Layer, true, _)) => Marker::Cross,
        Some((NormKind::Layer, false, _)) => Marker::Diamond,
    }
}

/// [`norm_color`] of a `train` configuration; SkipInit (which needs a standard block, where
/// normalisers go before the activation) takes the colours of the placements after it:
/// [`skip_init_color`].
pub fn arm_color(arm: crate::experiment::train::TrainArm) -> RGBColor {
    if arm.skip_init {
        skip_init_color(arm.norm)
    } else {
        norm_color(arm.norm)
    }
}

/// The colour of a SkipInit arm, in `train` and `grad-norms` alike: bluish green without a
/// normaliser, reddish purple with BatchNorm, black with LayerNorm. These are the colours of
/// the normalisers after the activation, which a standard block (the only kind SkipInit
/// needs) never has, so no normaliser arm of the same figure shares them.
pub fn skip_init_color(norm: crate::config::Normaliser) -> RGBColor {
    use crate::config::NormKind;
    match norm.kind() {
        None => okabe_ito::BLUISH_GREEN,
        Some(NormKind::Batch) => okabe_ito::REDDISH_PURPLE,
        Some(NormKind::Layer) => okabe_ito::BLACK,
    }
}

/// [`norm_marker`] of a `train` configuration; SkipInit arms take triangles (up without a
/// normaliser, down with one).
pub fn arm_marker(arm: crate::experiment::train::TrainArm) -> Marker {
    match (arm.skip_init, arm.norm.is_on()) {
        (false, _) => norm_marker(arm.norm),
        (true, false) => Marker::TriangleUp,
        (true, true) => Marker::TriangleDown,
    }
}

/// The colour and marker of a `grad-norms` arm with a standard block (the PNG figures' and
/// the live page's): the colour says what `train` says of the same configuration (its
/// normaliser's colour, SkipInit's [`skip_init_color`]: bluish green without a normaliser,
/// as in `train.png`), the marker names the block (preact diamonds, basic downward
/// triangles). So a SkipInit arm differs in colour from every arm without SkipInit, and from
/// the one-layer skip arms (upward triangles) in marker; `basic` and `preact` with SkipInit
/// differ in marker.
pub fn block_arm_style(
    block: crate::spec::StdBlock,
    skip_init: bool,
    norm: crate::config::Normaliser,
) -> (RGBColor, Marker) {
    use crate::spec::StdBlock;
    let color = if skip_init {
        skip_init_color(norm)
    } else {
        norm_color(norm)
    };
    let marker = match block {
        StdBlock::Preact => Marker::Diamond,
        StdBlock::Basic => Marker::TriangleDown,
    };
    (color, marker)
}

/// `{what}: BN off 95.6%, BN on 91.4%`, a legend line of the arms' test accuracies on a
/// classification task; `None` when no arm has one (a regression task).
pub fn accuracy_note<'a>(
    what: &str,
    arms: impl IntoIterator<Item = (&'a str, Option<crate::stats::Num>)>,
) -> Option<LegendItem> {
    let parts: Vec<String> = arms
        .into_iter()
        .filter_map(|(label, acc)| acc.map(|v| format!("{label} {}", crate::train::percent(v.0))))
        .collect();
    (!parts.is_empty()).then(|| LegendItem::text(format!("{what}: {}", parts.join(", "))))
}

/// [`accuracy_note`] of measured runs (the legends of `landscape` and `ics`).
pub fn trained_accuracy_note<'a>(
    arms: impl IntoIterator<Item = &'a crate::experiment::TrainedArm>,
) -> Option<LegendItem> {
    accuracy_note(
        "test accuracy after training",
        arms.into_iter()
            .map(|a| (a.label.as_str(), a.final_test_accuracy)),
    )
}
