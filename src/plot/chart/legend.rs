//! Legends: the lines a panel's contents call for ([`panel_legend`]) or several panels share
//! ([`shared_legend`]), laid out in a given width with long labels wrapped ([`layout_legend`]),
//! and drawn in a white box outside the plots ([`draw_legend`]).

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::failed;
use super::font::text_style;
use super::layout::Rect;
use super::marks::{Dash, Marker, dash_pieces, draw_marker_px};
use super::panel::{Axes, Panel, Series};
use super::scale::{lin_tick, usable};

/// What a legend line shows before its text.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    Line {
        color: RGBColor,
        dash: Dash,
        marker: Option<Marker>,
        width: u32,
    },
    /// A marker alone (a scatter series).
    Point { color: RGBColor, marker: Marker },
    /// A shaded band.
    Band(RGBColor),
    /// A grey dashed guide line.
    Guide,
    /// The ▼ of a value drawn in the bottom strip.
    BottomMark,
    /// The ✕ of a value drawn in the top strip.
    TopMark,
    /// Text only: a note on how to read the figure.
    Text,
}

/// One line of a legend.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendItem {
    pub label: String,
    pub sample: Sample,
}

impl LegendItem {
    pub fn new(label: impl Into<String>, sample: Sample) -> Self {
        LegendItem {
            label: label.into(),
            sample,
        }
    }

    /// A line of text without a sample.
    pub fn text(label: impl Into<String>) -> Self {
        LegendItem::new(label, Sample::Text)
    }
}

/// What a legend line adds to a series with no value its panel can draw.
const NO_FINITE: &str = " (no finite value)";

/// What a shared legend's line adds to a series drawn in some of its panels but not all.
const NO_FINITE_SOMEWHERE: &str = " (no finite value in some panels)";

/// Below this share of the y range a band is too thin to see: the legend states the spread.
const THIN_BAND: f64 = 0.012;

/// The legend a panel's contents call for: its listed series (a series without any usable
/// value saying so, a band too thin to see stating its spread), its guides, and what the edge
/// marks mean where there are any.
pub fn panel_legend(panel: &Panel) -> Vec<LegendItem> {
    legend_entries(panel)
        .into_iter()
        .map(|(mut item, thin)| {
            if let Some(spread) = thin {
                item.label.push_str(&format!(" (seeds within {spread})"));
            }
            item
        })
        .collect()
}

/// A panel's legend lines, each with the spread of its series' band when that band is too thin
/// to see (`None` otherwise).
fn legend_entries(panel: &Panel) -> Vec<(LegendItem, Option<String>)> {
    let axes = Axes::of(panel);
    let mut items = Vec::new();
    for s in panel.series.iter().filter(|s| s.legend) {
        let mut label = s.label.clone();
        let mut thin = None;
        if !s.points.iter().any(|p| usable(p.1, axes.log)) {
            label.push_str(NO_FINITE);
        } else {
            thin = thin_band_spread(s, &axes);
        }
        let sample = if s.no_line {
            Sample::Point {
                color: s.color,
                marker: s.marker.unwrap_or(Marker::Circle),
            }
        } else {
            Sample::Line {
                color: s.color,
                dash: s.dash,
                marker: s.marker,
                width: s.width,
            }
        };
        items.push((LegendItem::new(label, sample), thin));
    }
    for (y, label) in &panel.guides {
        let at = axes.plot_y(*y);
        if usable(*y, axes.log) && at >= axes.y.0 && at <= axes.y.1 {
            items.push((LegendItem::new(label.clone(), Sample::Guide), None));
        }
    }
    if axes.edges.bottom {
        let label = panel.bottom_edge_label.clone().unwrap_or_else(|| {
            if panel.log_y {
                "bottom strip: exactly 0 (underflow)".to_string()
            } else {
                "bottom strip: 0".to_string()
            }
        });
        items.push((LegendItem::new(label, Sample::BottomMark), None));
    }
    if axes.edges.top {
        let label = panel
            .top_edge_label
            .clone()
            .unwrap_or_else(|| "top strip: inf or NaN (overflow)".to_string());
        items.push((LegendItem::new(label, Sample::TopMark), None));
    }
    items
}

/// The widest spread of a series' band, as text (`x1.03` on a log axis, `±0.002` on a linear
/// one), when the band is too thin to see on this axis.
fn thin_band_spread(s: &Series, axes: &Axes) -> Option<String> {
    let widths = s
        .band
        .iter()
        .filter(|b| usable(b.1, axes.log) && usable(b.2, axes.log))
        .map(|b| axes.plot_y(b.2) - axes.plot_y(b.1));
    let widest = widths.fold(f64::NAN, f64::max);
    if !(widest.is_finite() && widest < THIN_BAND * (axes.y.1 - axes.y.0)) {
        return None;
    }
    Some(if axes.log {
        format!("×{:.3}", 10f64.powf(widest))
    } else {
        format!("±{}", lin_tick(&(widest / 2.0)))
    })
}

/// Every panel's legend in one list, each distinct line once: the legend of panels that share
/// their series.
pub fn shared_legend<'p>(panels: impl IntoIterator<Item = &'p Panel>) -> Vec<LegendItem> {
    // A series whose band is too thin to see states its spread only if it is too thin in every
    // panel it appears in (the widest spread is stated: the band is visible somewhere else).
    let mut items: Vec<(LegendItem, Option<String>, bool)> = Vec::new();
    for (item, thin) in panels.into_iter().flat_map(legend_entries) {
        // A series with values in one panel and none in another is one line, saying so.
        if let Some(kept) = items.iter_mut().find(|(i, _, _)| {
            i.sample == item.sample
                && i.label != item.label
                && bare_label(&i.label) == bare_label(&item.label)
        }) {
            kept.0.label = format!("{}{NO_FINITE_SOMEWHERE}", bare_label(&item.label));
            kept.2 |= thin.is_none();
            continue;
        }
        match items.iter_mut().find(|(i, _, _)| *i == item) {
            Some((_, kept, visible)) => {
                *visible |= thin.is_none();
                if let (Some(a), Some(b)) = (kept.as_ref(), thin.as_ref()) {
                    if spread_value(b) > spread_value(a) {
                        *kept = thin;
                    }
                }
            }
            None => {
                let visible = thin.is_none();
                items.push((item, thin, visible));
            }
        }
    }
    items
        .into_iter()
        .map(|(mut item, thin, visible)| {
            if let (Some(spread), false) = (thin, visible) {
                item.label.push_str(&format!(" (seeds within {spread})"));
            }
            item
        })
        .collect()
}

/// A legend line's label without what [`NO_FINITE`] or [`NO_FINITE_SOMEWHERE`] added.
fn bare_label(label: &str) -> &str {
    label
        .strip_suffix(NO_FINITE)
        .or_else(|| label.strip_suffix(NO_FINITE_SOMEWHERE))
        .unwrap_or(label)
}

/// The number in a spread text (`×1.78`, `±0.002`).
fn spread_value(s: &str) -> f64 {
    s.trim_start_matches(['×', '±']).parse().unwrap_or(0.0)
}

/// A legend laid out: its lines (the sample on each item's first line), its columns and its
/// size.
pub struct LegendBox {
    lines: Vec<(Option<Sample>, String)>,
    /// Each column's first line (an index into `lines`) and its left edge in pixels from the
    /// box's; one column, `(0, 0)`, unless the legend was laid out in several.
    columns: Vec<(usize, u32)>,
    /// Width and height in pixels.
    pub size: (u32, u32),
    font: u32,
}

impl LegendBox {
    /// How many columns it was laid out in.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }
}

const LEGEND_PAD: u32 = 12;

const SAMPLE_W: u32 = 48;

const SAMPLE_GAP: u32 = 10;

/// Between two columns of a legend laid out in several.
const COLUMN_GAP: u32 = 24;

/// One item's lines as laid out, and the widest line's width in pixels.
type Wrapped = (Vec<(Option<Sample>, String)>, u32);

/// Each item's lines with long labels wrapped at spaces to `text_max` pixels of text.
fn wrap_items<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    font: u32,
    text_max: u32,
) -> Result<Vec<Wrapped>>
where
    DB::ErrorType: 'static,
{
    let style = text_style(font);
    let measure = |t: &str| -> Result<u32> {
        Ok(area
            .estimate_text_size(t, &style)
            .map_err(failed("measuring legend"))?
            .0)
    };
    let mut wrapped = Vec::new();
    for item in items {
        let mut sample = (item.sample != Sample::Text).then(|| item.sample.clone());
        let mut lines = Vec::new();
        let mut widest = 0;
        let mut line = String::new();
        for word in item.label.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && measure(&candidate)? > text_max {
                widest = widest.max(measure(&line)?);
                lines.push((sample.take(), std::mem::take(&mut line)));
                line = format!("   {word}");
            } else {
                line = candidate;
            }
        }
        widest = widest.max(measure(&line)?);
        lines.push((sample.take(), line));
        wrapped.push((lines, widest));
    }
    Ok(wrapped)
}

/// The width of text a legend line may have in a column `max_w` pixels wide.
fn text_max(max_w: u32) -> u32 {
    max_w
        .saturating_sub(2 * LEGEND_PAD + SAMPLE_W + SAMPLE_GAP)
        .max(80)
}

/// Lay out `items` in at most `max_w` pixels of width, wrapping long labels at spaces.
pub fn layout_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    font: u32,
    max_w: u32,
) -> Result<LegendBox>
where
    DB::ErrorType: 'static,
{
    layout_legend_columns(area, items, font, max_w, 1)
}

/// Lay out `items` in `cols` columns side by side, each at most `max_w` pixels wide (labels
/// wrapped at spaces), filled in order, an item never split between columns, each column
/// about as long as the others.
pub fn layout_legend_columns<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    font: u32,
    max_w: u32,
    cols: usize,
) -> Result<LegendBox>
where
    DB::ErrorType: 'static,
{
    let wrapped = wrap_items(area, items, font, text_max(max_w))?;
    let total: usize = wrapped.iter().map(|w| w.0.len()).sum();
    let per_col = total.div_ceil(cols.max(1)).max(1);
    let mut lines = Vec::new();
    let mut columns = vec![(0, 0)];
    let (mut x, mut widest, mut rows, mut tallest) = (0, 0, 0, 0);
    for (item_lines, w) in wrapped {
        // A new column once this one holds its share (never an empty one).
        if rows > 0 && rows + item_lines.len() > per_col && columns.len() < cols {
            x += LEGEND_PAD + SAMPLE_W + SAMPLE_GAP + widest + COLUMN_GAP;
            columns.push((lines.len(), x));
            (widest, rows) = (0, 0);
        }
        widest = widest.max(w);
        rows += item_lines.len();
        tallest = tallest.max(rows);
        lines.extend(item_lines);
    }
    let row = row_height(font);
    let w = x + 2 * LEGEND_PAD + SAMPLE_W + SAMPLE_GAP + widest;
    let h = 2 * LEGEND_PAD + row * tallest as u32;
    Ok(LegendBox {
        lines,
        columns,
        size: (w, h),
        font,
    })
}

/// Lay out `items` to fit a column of the figure: in one column at most `max_w` wide at the
/// first font of `fonts` (largest first) if it is at most `max_h` high, as it always was;
/// else at the first smaller font at which it is at most `shrunk_h` high (a legend that had
/// to shrink keeps clear of the bottom row of axis labels too); else in as many columns as
/// it needs at the last font (up to 3, each at most `column_w` wide); else as the last try
/// left it.
pub fn fit_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    fonts: &[u32],
    (max_w, column_w): (u32, u32),
    (max_h, shrunk_h): (u32, u32),
) -> Result<LegendBox>
where
    DB::ErrorType: 'static,
{
    let mut legend = None;
    for (i, &font) in fonts.iter().enumerate() {
        let l = layout_legend(area, items, font, max_w)?;
        if l.size.1 <= if i == 0 { max_h } else { shrunk_h } {
            return Ok(l);
        }
        legend = Some(l);
    }
    let smallest = fonts
        .last()
        .copied()
        .unwrap_or(super::font::Fonts::SLIDE.legend);
    for cols in 2..=3 {
        let l = layout_legend_columns(area, items, smallest, column_w, cols)?;
        let fits = l.size.1 <= shrunk_h;
        legend = Some(l);
        if fits {
            break;
        }
    }
    match legend {
        Some(l) => Ok(l),
        None => layout_legend(area, items, smallest, max_w),
    }
}

fn row_height(font: u32) -> u32 {
    (font as f64 * 1.4).ceil() as u32
}

/// Draw a laid-out legend with its upper left corner at `at` (in `area`'s pixels); returns its
/// box in PNG pixels.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    legend: &LegendBox,
    at: (i32, i32),
) -> Result<Rect>
where
    DB::ErrorType: 'static,
{
    let (w, h) = (legend.size.0 as i32, legend.size.1 as i32);
    area.draw(&Rectangle::new([at, (at.0 + w, at.1 + h)], WHITE.filled()))
        .map_err(failed("drawing legend"))?;
    area.draw(&Rectangle::new(
        [at, (at.0 + w, at.1 + h)],
        ShapeStyle::from(&BLACK.mix(0.4)).stroke_width(1),
    ))
    .map_err(failed("drawing legend"))?;
    let row = row_height(legend.font) as i32;
    let style = text_style(legend.font).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Center,
    ));
    for (i, (sample, text)) in legend.lines.iter().enumerate() {
        let (first, dx) = legend
            .columns
            .iter()
            .rev()
            .find(|c| c.0 <= i)
            .copied()
            .unwrap_or((0, 0));
        let y = at.1 + LEGEND_PAD as i32 + row * (i - first) as i32 + row / 2;
        let x = at.0 + LEGEND_PAD as i32 + dx as i32;
        if let Some(sample) = sample {
            draw_sample(area, sample, (x, y))?;
        }
        let tx = if sample.is_none() && !text.starts_with("   ") && !has_samples(legend) {
            x
        } else {
            x + (SAMPLE_W + SAMPLE_GAP) as i32
        };
        area.draw_text(text, &style, (tx, y))
            .map_err(failed("drawing legend"))?;
    }
    let base = area.get_base_pixel();
    Ok(Rect::new(
        base.0 + at.0,
        base.1 + at.1,
        base.0 + at.0 + w,
        base.1 + at.1 + h,
    ))
}

/// Draw `items` as one legend in `area`, its upper left corner at `at` (in `area`'s pixels),
/// wrapped to the area's width; returns its box in PNG pixels. For figures that lay out their
/// own panels (with [`draw_panel_bare`](super::draw::draw_panel_bare)) and share one legend column among them.
pub fn draw_legend_items<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    font: u32,
    at: (i32, i32),
) -> Result<Rect>
where
    DB::ErrorType: 'static,
{
    let max_w = (area.dim_in_pixel().0 as i32 - at.0).max(0) as u32;
    let legend = layout_legend(area, items, font, max_w)?;
    draw_legend(area, &legend, at)
}

fn has_samples(legend: &LegendBox) -> bool {
    legend.lines.iter().any(|l| l.0.is_some())
}

/// A legend sample, [`SAMPLE_W`] wide, starting at `(x, y)` (its vertical middle).
fn draw_sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    sample: &Sample,
    (x, y): (i32, i32),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let grey = RGBColor(60, 60, 60);
    let w = SAMPLE_W as i32;
    match *sample {
        Sample::Line {
            color,
            dash,
            marker,
            width,
        } => {
            let st = ShapeStyle::from(&color).stroke_width(width.max(3));
            for (a, b) in dash_pieces(dash, w) {
                area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], st))
                    .map_err(failed("drawing legend"))?;
            }
            if let Some(m) = marker {
                draw_marker_px(area, (x + w / 2, y), m, color)?;
            }
        }
        Sample::Point { color, marker } => draw_marker_px(area, (x + w / 2, y), marker, color)?,
        Sample::Band(color) => area
            .draw(&Rectangle::new(
                [(x, y - 8), (x + w, y + 8)],
                color.mix(0.3).filled(),
            ))
            .map_err(failed("drawing legend"))?,
        Sample::Guide => {
            let st = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
            for (a, b) in dash_pieces(Dash::Dashed, w) {
                area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], st))
                    .map_err(failed("drawing legend"))?;
            }
        }
        Sample::BottomMark => area
            .draw(&Polygon::new(
                vec![
                    (x + w / 2 - 8, y - 7),
                    (x + w / 2 + 8, y - 7),
                    (x + w / 2, y + 7),
                ],
                grey.filled(),
            ))
            .map_err(failed("drawing legend"))?,
        Sample::TopMark => draw_marker_px(area, (x + w / 2, y), Marker::Cross, grey)?,
        Sample::Text => {}
    }
    Ok(())
}
