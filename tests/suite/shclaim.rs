//! Issue 31's leftovers: slide legends that fit with ten or more `grad-norms` arms (a smaller
//! font, then columns), and the `shattered` depth axis saying what it counts (hidden layers,
//! blocks, or both).

use crate::common;

use bn_lab::experiment::Experiment;
use bn_lab::experiment::grad_norms::{GradNorms, GradNormsConfig};
use bn_lab::experiment::shattered::Arch;
use bn_lab::plot::Figures;
use bn_lab::plot::shattered::depth_axis_label;

fn grad_norms(args: &[&str]) -> GradNormsConfig {
    common::small_grad_norms("3", args)
}

/// Ten arms (five skips x two normalisers) overflowed the theory and stream slides' legends
/// below the figure: now every figure is clear. Fifteen need columns, and every legend stays
/// on its figure (`plot_fixes.rs` checks eighteen arms' figures clear as well).
#[test]
fn ten_and_fifteen_grad_norms_arms_keep_every_legend_on_its_figure() {
    let skips = "off,on,basic,preact,preact-skipinit";
    let c = grad_norms(&["--skips", skips, "--norm", "none,batch"]);
    let (report, layouts) = common::assert_figures_clear::<GradNorms>(&c, "ten arms");
    assert_eq!(report.arms.len(), 10);
    for file in ["grad_norms_theory.png", "grad_norms_stream.png"] {
        assert!(layouts.iter().any(|(f, _)| f == file), "{file}");
    }
    let c = grad_norms(&["--skips", skips, "--norm", "none,batch,layer"]);
    let report = GradNorms::run(&c, &|_| {});
    assert_eq!(report.arms.len(), 15);
    for fig in GradNorms::figures_for(&c) {
        let layout = (fig.draw)(&report).expect("drawn").layout;
        assert!(!layout.legends.is_empty(), "{}", fig.file);
        let off: Vec<String> = layout
            .collisions()
            .into_iter()
            .filter(|c| c.starts_with("legend") && c.contains("leaves the"))
            .collect();
        assert!(
            off.is_empty(),
            "fifteen arms: {}: {}",
            fig.file,
            off.join("; ")
        );
    }
}

#[test]
fn the_shattered_depth_axis_says_layers_blocks_or_both() {
    let ff = [Arch::Feedforward, Arch::FeedforwardBn, Arch::ResnetBn];
    assert_eq!(depth_axis_label(&ff, false), "depth L (hidden layers)");
    assert_eq!(depth_axis_label(&ff, true), "depth L (hidden layers, log)");
    let blocks = [Arch::PreactBn, Arch::BasicBn, Arch::PreactSkipinit];
    assert_eq!(depth_axis_label(&blocks, true), "depth L (blocks, log)");
    let mixed = [Arch::ResnetBn, Arch::PreactBn];
    let label = depth_axis_label(&mixed, false);
    assert!(
        label.contains("layers") && label.contains("blocks for preact/basic"),
        "{label}"
    );
}
