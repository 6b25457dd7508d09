//! Whole figures: a white PNG with a title band on top ([`figure`]), panels in equal cells
//! ([`Grid`], detail figures) or 1 to 4 panels with one legend column on a 16:9 slide
//! ([`Slide`], headlines). A figure is rendered in memory and returned as PNG bytes ([`Png`]).

use anyhow::{Result, anyhow};
use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{draw_panel, draw_panel_bare};
use super::error::failed;
use super::font::{FAMILY, Fonts, register_font};
use super::layout::Layout;
use super::legend::{
    LegendBox, LegendItem, draw_legend, draw_legend_items, fit_legend, layout_legend_columns,
    shared_legend,
};
use super::panel::Panel;

/// Height in pixels of the band at the top of every figure that holds its title and subtitle.
pub const TITLE_HEIGHT: u32 = 110;

/// A headline figure's size: a 16:9 slide.
pub const SLIDE_SIZE: (u32, u32) = (1920, 1080);

/// A figure's drawing area, or a part of it.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The body of a grid figure: `panels` in `rows x cols` cells (detail fonts) across the left
/// `plots_w` pixels of `body`, and (when `items` is not empty) one legend of `items` in the rest,
/// its top level with the first plot area.
pub fn panels_with_legend(
    body: &Area<'_>,
    plots_w: u32,
    (rows, cols): (usize, usize),
    panels: &[&Panel],
    items: &[LegendItem],
) -> Result<Layout> {
    let (plots, side) = body.split_horizontally(plots_w);
    let cells = plots.split_evenly((rows, cols));
    let mut layout = Layout::default();
    for (cell, panel) in cells.iter().zip(panels) {
        layout
            .panels
            .push(draw_panel_bare(cell, panel, Fonts::DETAIL)?);
    }
    if !items.is_empty() {
        let top = layout
            .panels
            .first()
            .map_or(0, |p| p.plot.y0 - side.get_base_pixel().1)
            .max(0);
        layout.legends.push(draw_legend_items(
            &side,
            items,
            Fonts::DETAIL.legend,
            (10, top),
        )?);
    }
    Ok(layout)
}

/// A figure rendered: the bytes of its PNG file and where it put things.
#[derive(Clone, Debug)]
pub struct Png {
    pub bytes: Vec<u8>,
    pub layout: Layout,
}

/// Render a figure as a PNG of `size` pixels: white, with `title` and `subtitle` centred in the
/// top [`TITLE_HEIGHT`] pixels; `draw_body` fills the area below and says where it put things.
/// Figures whose panels sit in equal cells use [`Grid`], headline figures [`Slide`].
pub fn figure(
    size: (u32, u32),
    title: &str,
    subtitle: &str,
    draw_body: impl FnOnce(&Area<'_>) -> Result<Layout>,
) -> Result<Png> {
    // The footprint budgets one bitmap of at most this many pixels; the list caps keep every
    // figure below it, so this only fires on a layout bug.
    let pixels = size.0 as f64 * size.1 as f64;
    anyhow::ensure!(
        pixels <= crate::limits::MAX_FIGURE_PIXELS,
        "a {}x{} figure exceeds the {} pixels a figure may have",
        size.0,
        size.1,
        crate::limits::MAX_FIGURE_PIXELS
    );
    register_font();
    let (w, h) = size;
    let len = (w as usize)
        .checked_mul(h as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| anyhow!("a {w}x{h}-pixel figure is too large"))?;
    let mut pixels = vec![0u8; len];
    let mut layout;
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let body = draw_title(&root, title, subtitle)?;
        layout = draw_body(&body)?;
        root.present().map_err(failed("drawing figure"))?;
    }
    layout.size = size;
    // Encoded as plotters' own `BitMapBackend::new(path)` would (`image`'s PNG encoder with
    // its defaults, so the bytes are the same); `output` writes them.
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(&pixels, w, h, ColorType::Rgb8)
        .map_err(|e| anyhow!("encoding PNG: {e}"))?;
    Ok(Png { bytes, layout })
}

/// Fill `root` white and draw the title and subtitle, returning the area below them.
fn draw_title<'a>(root: &Area<'a>, title: &str, subtitle: &str) -> Result<Area<'a>> {
    root.fill(&WHITE).map_err(failed("filling background"))?;
    let (w, _) = root.dim_in_pixel();
    let (top, rest) = root.split_vertically(TITLE_HEIGHT);
    let center = |size: u32| {
        TextStyle::from((FAMILY, size).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ))
    };
    top.draw_text(title, &center(42), (w as i32 / 2, 14))
        .map_err(failed("drawing title"))?;
    top.draw_text(
        subtitle,
        &center(26).color(&RGBColor(70, 70, 70)),
        (w as i32 / 2, 66),
    )
    .map_err(failed("drawing title"))?;
    Ok(rest)
}

/// The layout of detail figures: `rows` x `cols` equal cells of `cell` pixels below the title
/// band, one panel each with its legend beside it. The PNG is sized from the cells, so a panel
/// keeps its size (and its text stays readable) however many panels a figure has.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
    /// Width and height of one cell in pixels.
    pub cell: (u32, u32),
}

impl Grid {
    pub fn new(rows: usize, cols: usize, cell: (u32, u32)) -> Self {
        Grid { rows, cols, cell }
    }

    /// The size of the PNG: the cells plus the title band.
    pub fn size(&self) -> (u32, u32) {
        (
            self.cell.0 * self.cols as u32,
            TITLE_HEIGHT + self.cell.1 * self.rows as u32,
        )
    }

    /// Render the figure; `draw_cells` gets the cells in row-major order (row `r`, column `c`
    /// at `r * cols + c`).
    pub fn draw(
        &self,
        title: &str,
        subtitle: &str,
        draw_cells: impl FnOnce(&[Area<'_>]) -> Result<Layout>,
    ) -> Result<Png> {
        figure(self.size(), title, subtitle, |body| {
            draw_cells(&body.split_evenly((self.rows, self.cols)))
        })
    }

    /// Render the figure with `panels` filling the cells in row-major order; cells beyond the
    /// last panel stay blank.
    pub fn draw_panels<'p>(
        &self,
        title: &str,
        subtitle: &str,
        panels: impl IntoIterator<Item = &'p Panel>,
    ) -> Result<Png> {
        self.draw(title, subtitle, |cells| {
            let mut layout = Layout::default();
            for (cell, panel) in cells.iter().zip(panels) {
                layout.extend(draw_panel(cell, panel)?);
            }
            Ok(layout)
        })
    }
}

/// A headline figure: a [`SLIDE_SIZE`] slide with 1 to 4 panels in `cols` columns (relative
/// widths `widths` when in one row), in [`Fonts::SLIDE`], and one legend for all of them in a
/// column on the right, outside every plot, ending with the `notes` lines (in a smaller font,
/// then in several columns, when it would not fit the slide's height otherwise).
#[derive(Clone, Debug)]
pub struct Slide {
    pub title: String,
    pub subtitle: String,
    pub panels: Vec<Panel>,
    pub cols: usize,
    /// Relative column widths of a one-row slide (equal when empty).
    pub widths: Vec<u32>,
    /// Lines added at the end of the shared legend (text only or with samples).
    pub notes: Vec<LegendItem>,
}

/// The widest a slide's legend column may be.
const SLIDE_LEGEND_MAX_W: u32 = 520;

/// The legend fonts a slide tries, largest first, until its legend fits the slide's height:
/// [`Fonts::SLIDE`]'s, down to 23 px (about 12 px when a projector shows the slide at
/// 1024x768; [`Fonts::DETAIL`]'s 22 is for reading at home).
const SLIDE_LEGEND_FONTS: [u32; 5] = [Fonts::SLIDE.legend, 26, 25, 24, 23];

/// The bottom of a slide's body that holds the panels' x-axis labels, which a wide label can
/// stretch into the legend's column: a legend that has to shrink to fit ends above it.
const SLIDE_AXIS_LABEL_ROW: u32 = 70;

/// The widest each column may be when a slide's legend needs several to fit.
const SLIDE_LEGEND_COLUMN_W: u32 = 440;

impl Slide {
    pub fn new(title: impl Into<String>, subtitle: impl Into<String>, panels: Vec<Panel>) -> Self {
        let cols = if panels.len() == 4 {
            2
        } else {
            panels.len().max(1)
        };
        Slide {
            title: title.into(),
            subtitle: subtitle.into(),
            panels,
            cols,
            widths: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Render the slide. A legend that needs several columns beside the panels (many arms, a
    /// note each) would squeeze them until their captions run together: its text-only notes
    /// then go in a box under the panels, across their width, and the column on the right
    /// keeps the lines with samples, when that fits.
    pub fn draw(&self) -> Result<Png> {
        anyhow::ensure!(
            (1..=4).contains(&self.panels.len()),
            "a headline figure has 1 to 4 panels, not {}",
            self.panels.len()
        );
        let mut items = shared_legend(&self.panels);
        items.extend(self.notes.iter().cloned());
        figure(SLIDE_SIZE, &self.title, &self.subtitle, |body| {
            let (w, h) = body.dim_in_pixel();
            // A legend too tall for the slide takes a smaller font, then columns.
            let fit = |items: &[LegendItem]| {
                fit_legend(
                    body,
                    items,
                    &SLIDE_LEGEND_FONTS,
                    (SLIDE_LEGEND_MAX_W, SLIDE_LEGEND_COLUMN_W),
                    (h, h.saturating_sub(SLIDE_AXIS_LABEL_ROW)),
                )
            };
            let mut legend = fit(&items)?;
            let mut below = None;
            if legend.column_count() > 1 {
                if let Some((side, notes)) = split_notes(body, &items, &fit)? {
                    legend = side;
                    below = Some(notes);
                }
            }
            let (plots, side) = body.split_horizontally(w - legend.size.0 - 20);
            let (plots, notes_area) = match &below {
                Some(notes) => {
                    let (p, n) = plots.split_vertically(h - notes.size.1 - NOTES_GAP);
                    (p, Some(n))
                }
                None => (plots, None),
            };
            let mut layout = self.draw_panels(&plots)?;
            if !items.is_empty() {
                let top = layout
                    .panels
                    .first()
                    .map(|p| p.plot.y0 - side.get_base_pixel().1)
                    .unwrap_or(0)
                    .min(h as i32 - legend.size.1 as i32)
                    .max(0);
                layout.legends.push(draw_legend(&side, &legend, (6, top))?);
            }
            if let (Some(notes), Some(area)) = (&below, &notes_area) {
                let left = (area.dim_in_pixel().0 as i32 - notes.size.0 as i32) / 2;
                let at = (left.max(0), NOTES_GAP as i32 / 2);
                layout.legends.push(draw_legend(area, notes, at)?);
            }
            Ok(layout)
        })
    }

    /// The panels in `plots`: in `widths` when one row has them, else in equal cells.
    fn draw_panels(&self, plots: &Area<'_>) -> Result<Layout> {
        let rows = self.panels.len().div_ceil(self.cols);
        let cells: Vec<Area<'_>> = if rows == 1 && self.widths.len() == self.panels.len() {
            let total: u32 = self.widths.iter().sum();
            let pw = plots.dim_in_pixel().0;
            let mut rest = plots.clone();
            let mut cells = Vec::new();
            for (i, &wi) in self.widths.iter().enumerate() {
                if i + 1 == self.widths.len() {
                    cells.push(rest.clone());
                } else {
                    let (a, b) = rest.split_horizontally(pw * wi / total.max(1));
                    cells.push(a);
                    rest = b;
                }
            }
            cells
        } else {
            plots.split_evenly((rows, self.cols))
        };
        let mut layout = Layout::default();
        for (cell, panel) in cells.iter().zip(&self.panels) {
            layout
                .panels
                .push(draw_panel_bare(cell, panel, Fonts::SLIDE)?);
        }
        Ok(layout)
    }
}

/// Between the panels and a box of notes under them, split evenly above and below the box.
const NOTES_GAP: u32 = 16;

/// The tallest share of a slide's body a box of notes under the panels may take.
const NOTES_MAX_SHARE: f64 = 0.45;

/// A slide's legend split in two: the lines with samples (`fit` lays them out, in one column)
/// and the text-only notes in a box under the panels, across the width the panels keep, in the
/// largest font of [`SLIDE_LEGEND_FONTS`] at which 1 to 3 columns hold them in at most
/// [`NOTES_MAX_SHARE`] of the body's height. `None` when there are no notes, the samples
/// alone still need several columns, or the notes do not fit.
fn split_notes(
    body: &Area<'_>,
    items: &[LegendItem],
    fit: &dyn Fn(&[LegendItem]) -> Result<LegendBox>,
) -> Result<Option<(LegendBox, LegendBox)>> {
    let (samples, notes): (Vec<LegendItem>, Vec<LegendItem>) = items
        .iter()
        .cloned()
        .partition(|i| i.sample != super::legend::Sample::Text);
    if notes.is_empty() || samples.is_empty() {
        return Ok(None);
    }
    let side = fit(&samples)?;
    if side.column_count() > 1 {
        return Ok(None);
    }
    let (w, h) = body.dim_in_pixel();
    let width = w.saturating_sub(side.size.0 + 20 + 2 * NOTES_GAP);
    let max_h = (h as f64 * NOTES_MAX_SHARE) as u32;
    for &font in &SLIDE_LEGEND_FONTS {
        for cols in 1..=3u32 {
            let column_w = width.saturating_sub((cols - 1) * 24) / cols;
            let l = layout_legend_columns(body, &notes, font, column_w, cols as usize)?;
            if l.size.0 <= width && l.size.1 <= max_h {
                return Ok(Some((side, l)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_is_the_png_of_its_size_and_records_it() {
        let png = figure((40, 160), "t", "s", |_| Ok(Layout::default())).unwrap();
        assert_eq!(png.layout.size, (40, 160));
        let img = image::load_from_memory(&png.bytes).expect("a valid PNG");
        assert_eq!((img.width(), img.height()), (40, 160));
        let err = figure((10_000, 10_000), "t", "s", |_| Ok(Layout::default())).unwrap_err();
        assert!(format!("{err:#}").contains("exceeds"), "{err:#}");
    }
}
