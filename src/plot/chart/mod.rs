//! A small charting layer over plotters, beneath the experiments' figure modules, which only
//! say what to draw:
//! - [`panel`]: what one chart shows (series, guides, notes, axis options) and its axes' ranges;
//! - [`scale`]: ranges safe for plotters whatever the data, y ranges, tick labels;
//! - [`marks`]: marker shapes and dash patterns;
//! - [`legend`]: legend lines of one panel or several, their layout and drawing;
//! - [`draw`]: drawing one panel (0 as ▼ on the bottom edge, inf/NaN as ✕ on the top edge);
//! - [`compose`]: whole figures, a title band over equal cells ([`Grid`]) or a headline slide
//!   ([`Slide`]), returned as PNG bytes;
//! - [`heatmap`]: heat maps with a log colour scale and a colour bar;
//! - [`layout`]: where a figure put things, for tests that check nothing covers data;
//! - [`palette`], [`font`], [`error`].
//!
//! The files use each other in one direction only: `font`, `palette`, `error`, `layout` and
//! `scale` use none of the others; `marks` uses `error`; `panel` uses `marks` and `scale`;
//! `legend` uses those below it; `draw` uses `legend` and below; `compose` uses `draw` and below;
//! `heatmap` uses `scale` and the leaves. Nothing here knows about experiments.
//!
//! Every range a chart hands plotters goes through [`axis_range`] first: plotters' tick
//! computation hangs or panics on ranges near `f64::MAX`, of infinite width, or too narrow for
//! their magnitude, and any finite data must draw.

pub mod compose;
pub mod draw;
pub mod error;
pub mod font;
pub mod heatmap;
pub mod layout;
pub mod legend;
pub mod marks;
pub mod palette;
pub mod panel;
pub mod scale;
#[cfg(test)]
mod tests;

pub use compose::{Area, Grid, Png, SLIDE_SIZE, Slide, TITLE_HEIGHT, figure, panels_with_legend};
pub use draw::{draw_message_panel, draw_panel, draw_panel_bare, draw_panel_with};
pub use error::plot_error_message;
pub use font::{FAMILY, Fonts, register_font};
pub use layout::{Layout, PanelLayout, Rect};
pub use legend::{
    LegendBox, LegendItem, Sample, draw_legend, draw_legend_items, fit_legend, layout_legend,
    layout_legend_columns, panel_legend, shared_legend,
};
pub use marks::{Dash, Marker, spread_marks};
pub use palette::{okabe_ito, ramp};
pub use panel::{MARKERS_ALL_UP_TO, Note, Panel, SPARSE_MARKERS, Series, positive_y_extent};
pub use scale::{AXIS_LIMIT, axis_range, union, y_range};
