//! The figures: one module per experiment saying what to draw from its report (the PNGs of
//! `<command>.png` and its detail figures), over the charting layer in [`chart`]. An experiment
//! lists its figures by implementing [`Figures`]; each [`Figure`] returns its PNG's bytes, which
//! `output` writes with the JSON, all or nothing.

pub mod arms;
pub mod chart;
pub mod grad_norms;
pub mod histograms;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod shattered;
pub mod shift;
pub mod sweep;
pub mod theory;
pub mod train;

use anyhow::Result;

pub use arms::{norm_color, norm_marker};
pub use chart::{
    Grid, Layout, Panel, PanelLayout, Png, SLIDE_SIZE, Series, TITLE_HEIGHT, okabe_ito,
    shared_legend,
};

/// One figure an experiment draws: its file name and the function drawing it from the report,
/// which returns the PNG's bytes and where it put things (see [`chart::layout`]); `output` writes them.
pub struct Figure<R> {
    /// File name inside the output directory, e.g. `grad_norms.png`.
    pub file: &'static str,
    pub draw: fn(&R) -> Result<Png>,
}

/// The figures of an experiment, drawn from its report (implemented in its plot module).
pub trait Figures: crate::experiment::Experiment {
    /// In the order the summary lists them; the first is the headline `<command>.png`.
    fn figures() -> Vec<Figure<Self::Report>>;

    /// The figures a run of `cfg` draws: [`Figures::figures`], then those its flags add
    /// (`--histograms`).
    fn figures_for(_cfg: &Self::Config) -> Vec<Figure<Self::Report>> {
        Self::figures()
    }
}
