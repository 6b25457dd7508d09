//! Drawing one panel: axes and ticks, the edge strips, guides, min-max bands, lines, markers
//! and edge marks, and notes placed beside their points where they cover the fewest others.
//! Every drawn point and label is recorded in the panel's [`PanelLayout`].

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::failed;
use super::font::{FAMILY, Fonts, text_style};
use super::layout::{Layout, PanelLayout, Rect};
use super::legend::{draw_legend, fit_legend, panel_legend};
use super::marks::{Marker, draw_marker_px};
use super::panel::{Axes, Note, Panel, Series};
use super::scale::{Chart, lin_tick, log_tick, segments, usable};

/// Draw one panel into `area` with its legend in a strip on the right of the plot, never over
/// it. On a log axis values are drawn at `log10(y)` on a linear axis with decade ticks
/// (plotters' own log axis mislabels ranges of many decades).
pub fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<Layout>
where
    DB::ErrorType: 'static,
{
    draw_panel_with(area, panel, Fonts::DETAIL)
}

/// [`draw_panel`] with the given fonts.
pub fn draw_panel_with<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fonts: Fonts,
) -> Result<Layout>
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let mut layout = Layout::new((0, 0));
    let items = panel_legend(panel);
    if items.is_empty() {
        layout.panels.push(draw_panel_bare(area, panel, fonts)?);
        return Ok(layout);
    }
    // A legend taller than the panel takes a font up to 4 px smaller, then columns.
    let max_w = (w as f64 * 0.36) as u32;
    let shrunk: Vec<u32> = (0..=4).map(|d| fonts.legend.saturating_sub(d)).collect();
    let legend = fit_legend(area, &items, &shrunk, (max_w, max_w), (h, h))?;
    let (plot_area, legend_area) = area.split_horizontally(w.saturating_sub(legend.size.0 + 16));
    let drawn = draw_panel_bare(&plot_area, panel, fonts)?;
    // Level with the top of the plot, or as high as it fits.
    let top = (drawn.plot.y0 - area.get_base_pixel().1)
        .min(h as i32 - legend.size.1 as i32)
        .max(0);
    layout
        .legends
        .push(draw_legend(&legend_area, &legend, (4, top))?);
    layout.panels.push(drawn);
    Ok(layout)
}

/// Where a panel's caption (centred over `area`, at its top) and x-axis label (centred under
/// `plot`, at the bottom of `area`) are written, measured in the font they are drawn in: the
/// layout test checks that neighbouring panels' texts do not run into each other.
fn text_boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fonts: Fonts,
    plot: Rect,
) -> Result<Vec<Rect>>
where
    DB::ErrorType: 'static,
{
    let (ax, ay) = area.get_pixel_range();
    let mut out = Vec::new();
    let mut measure = |text: &str, size: u32, cx: i32, y0: i32| -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let (w, h) = area
            .estimate_text_size(text, &text_style(size))
            .map_err(failed("measuring a caption"))?;
        let (w, h) = (w as i32, h as i32);
        out.push(Rect::new(cx - w / 2, y0, cx - w / 2 + w, y0 + h));
        Ok(())
    };
    measure(
        &panel.caption,
        fonts.caption,
        (ax.start + ax.end) / 2,
        ay.start,
    )?;
    let x_label_top = ay.end - fonts.axis as i32 - 4;
    measure(
        &panel.x_label,
        fonts.axis,
        (plot.x0 + plot.x1) / 2,
        x_label_top.max(plot.y1),
    )?;
    Ok(out)
}

/// The smallest font a caption or axis label is shrunk to so that it fits its panel's width
/// (about 12.5 px when a projector shows a 1920-pixel slide at 1024x768).
const MIN_FIT_FONT: u32 = 24;

/// The size, from `size` down to [`MIN_FIT_FONT`] 2 px at a time, at which `text` is at most
/// `room` pixels wide (the smallest when none is): text that fits keeps its size.
fn fit_font<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    mut size: u32,
    room: u32,
) -> Result<u32>
where
    DB::ErrorType: 'static,
{
    while size > MIN_FIT_FONT {
        let w = area
            .estimate_text_size(text, &text_style(size))
            .map_err(failed("measuring a caption"))?
            .0;
        if w <= room {
            break;
        }
        size = size.saturating_sub(2).max(MIN_FIT_FONT);
    }
    Ok(size)
}

/// Draw one panel's chart into `area` without a legend (a figure with a shared legend draws
/// it elsewhere); returns where its plot and data went.
pub fn draw_panel_bare<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fonts: Fonts,
) -> Result<PanelLayout>
where
    DB::ErrorType: 'static,
{
    let axes = Axes::of(panel);
    // A caption or an x-axis label wider than its panel would run into the next panel's: it
    // takes a smaller font.
    let (ax, _) = area.get_pixel_range();
    let caption = fit_font(
        area,
        &panel.caption,
        fonts.caption,
        (ax.len() as u32).saturating_sub(2 * 16),
    )?;
    let fonts = Fonts { caption, ..fonts };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, (FAMILY, fonts.caption))
        .margin(16)
        .x_label_area_size(fonts.axis * 2 + fonts.tick + 12)
        .y_label_area_size(fonts.axis + fonts.tick * 4 + 10)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(failed("building chart"))?;
    // The x-axis label may reach past its plot's side into the free corner of the next
    // panel's y-label area, as long as it is no wider than its own panel.
    let axis = fit_font(
        area,
        &panel.x_label,
        fonts.axis,
        (ax.len() as u32).saturating_sub(2 * 16),
    )?;
    let fonts = Fonts { axis, ..fonts };
    draw_panel_axes(&mut chart, panel, &axes, fonts)?;
    draw_edge_strips(&mut chart, &axes)?;
    draw_guides(&mut chart, panel, &axes)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let plot = Rect::new(xr.start, yr.start, xr.end, yr.end);
    let mut drawn = PanelLayout {
        caption: panel.caption.clone(),
        plot,
        points: Vec::new(),
        labels: Vec::new(),
        texts: text_boxes(area, panel, fonts, plot)?,
    };
    for s in &panel.series {
        draw_band(&mut chart, s, &axes, &mut drawn.points)?;
    }
    for s in &panel.series {
        draw_line(&mut chart, s, &axes, drawn.plot, &mut drawn.points)?;
    }
    for s in &panel.series {
        draw_point_marks(area, &chart, s, &axes, drawn.plot, &mut drawn.points)?;
    }
    drawn.labels = draw_notes(area, &chart, panel, &axes, fonts, drawn.plot, &drawn.points)?;
    Ok(drawn)
}

/// Axis labels, tick labels and the light grid. Integer x axes (layer indices) leave the
/// fractional ticks unlabelled; log axes are labelled in decades; ticks in an edge strip are
/// not labelled.
fn draw_panel_axes<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    panel: &Panel,
    axes: &Axes,
    fonts: Fonts,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let x_fmt = |v: &f64| {
        if let Some((_, name)) = panel
            .x_tick_names
            .iter()
            .find(|(x, _)| (x - v).abs() < 1e-9)
        {
            name.clone()
        } else if (panel.integer_x || panel.log2_x || panel.log_x) && (v - v.round()).abs() > 1e-9 {
            String::new()
        } else if panel.log2_x {
            format!("{}", 2f64.powi(v.round() as i32))
        } else if panel.log_x {
            log_tick(*v)
        } else {
            lin_tick(v)
        }
    };
    let y_fmt = |t: &f64| {
        if !axes.in_data(*t) {
            String::new()
        } else if axes.log {
            log_tick(*t)
        } else {
            lin_tick(t)
        }
    };
    // About one x label per 110 pixels, so narrow panels do not run their labels together.
    let plot_w = chart.plotting_area().dim_in_pixel().0;
    let x_labels = (plot_w as usize / 110).clamp(3, 12);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(x_labels);
    mesh.x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .axis_desc_style((FAMILY, fonts.axis))
        .label_style((FAMILY, fonts.tick))
        .y_labels(axes.y_label_count())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(BLACK.mix(0.05))
        .bold_line_style(BLACK.mix(0.15));
    if panel.log_x {
        mesh.x_labels(((axes.x.1 - axes.x.0).ceil() as usize + 1).clamp(2, 12));
    }
    mesh.draw().map_err(failed("drawing axes"))
}

/// The strips beyond the data range that hold the edge marks: shaded light grey, with a line
/// where the data range ends.
fn draw_edge_strips<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, axes: &Axes) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = axes.x;
    for (on, from, to) in [
        (axes.edges.top, axes.data_y.1, axes.y.1),
        (axes.edges.bottom, axes.y.0, axes.data_y.0),
    ] {
        if !on {
            continue;
        }
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, from), (x1, to)],
                BLACK.mix(0.06).filled(),
            )))
            .map_err(failed("drawing edge strip"))?;
        let edge = if from == axes.data_y.1 { from } else { to };
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0, edge), (x1, edge)],
                ShapeStyle::from(&BLACK.mix(0.35)).stroke_width(1),
            )))
            .map_err(failed("drawing edge strip"))?;
    }
    Ok(())
}

/// The panel's horizontal guide lines (reference levels such as the best linear fit), dashed
/// grey across the whole width; guides off the y range are left out rather than clamped.
fn draw_guides<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    panel: &Panel,
    axes: &Axes,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let ((x0, x1), (y0, y1)) = (axes.x, axes.y);
    for (y, _) in &panel.guides {
        let at = axes.plot_y(*y);
        if !usable(*y, axes.log) || at < y0 || at > y1 {
            continue;
        }
        let style = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, at), (x1, at)],
                12,
                8,
                style,
            ))
            .map_err(failed("drawing guide"))?;
    }
    Ok(())
}

/// The series' min-max band, shaded in its colour with thin edges: one polygon per run of x
/// where both bounds are usable, so a gap (e.g. a seed that overflowed) breaks the band
/// instead of bridging it.
fn draw_band<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    s: &Series,
    axes: &Axes,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    for &b in &s.band {
        match axes.plot_x(b.0) {
            Some(x) if usable(b.1, axes.log) && usable(b.2, axes.log) => {
                run.push((x, axes.plot_y(b.1), axes.plot_y(b.2)))
            }
            _ => {
                draw_band_run(chart, &run, s.color, points)?;
                run.clear();
            }
        }
    }
    draw_band_run(chart, &run, s.color, points)
}

/// One polygon of a band (in plot coordinates): upper bounds left to right, then lower bounds
/// back (a single point has no area and is skipped).
fn draw_band_run<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    run: &[(f64, f64, f64)],
    color: RGBColor,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if run.len() < 2 {
        return Ok(());
    }
    let upper: Vec<(f64, f64)> = run.iter().map(|b| (b.0, b.2)).collect();
    let lower: Vec<(f64, f64)> = run.iter().map(|b| (b.0, b.1)).collect();
    let mut poly = upper.clone();
    poly.extend(lower.iter().rev());
    let plot = {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        Rect::new(xr.start, yr.start, xr.end, yr.end)
    };
    points.extend(
        poly.iter()
            .map(|p| chart.backend_coord(p))
            .filter(|p| plot.contains(*p)),
    );
    chart
        .draw_series(std::iter::once(Polygon::new(
            poly,
            color.mix(0.22).filled(),
        )))
        .map_err(failed("drawing band"))?;
    let edge = ShapeStyle::from(&color.mix(0.6)).stroke_width(1);
    for side in [upper, lower] {
        chart
            .draw_series(LineSeries::new(side, edge))
            .map_err(failed("drawing band"))?;
    }
    Ok(())
}

/// The series' line, one piece per run of usable values, in its dash pattern.
fn draw_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    s: &Series,
    axes: &Axes,
    plot: Rect,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = ShapeStyle::from(&s.color).stroke_width(s.width);
    let on_axes: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|&(x, y)| axes.plot_x(x).map(|x| (x, y)))
        .collect();
    for seg in segments(&on_axes, axes.log) {
        let seg: Vec<(f64, f64)> = seg.into_iter().map(|(x, y)| (x, axes.plot_y(y))).collect();
        points.extend(
            seg.iter()
                .map(|p| chart.backend_coord(p))
                .filter(|p| plot.contains(*p)),
        );
        if s.no_line {
            continue;
        }
        match s.dash.pattern() {
            None => chart.draw_series(LineSeries::new(seg, style)),
            Some((on, off)) => chart.draw_series(DashedLineSeries::new(seg, on, off, style)),
        }
        .map_err(failed("drawing line"))?;
    }
    Ok(())
}

/// The series' markers (on its usable points) and its edge marks (unusable values at their x:
/// finite ones, 0 or negatives on a log axis, as a ▼ in the bottom strip, inf/NaN as a ✕ in
/// the top strip), so underflow and overflow stay visible where a line would just stop.
fn draw_point_marks<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    s: &Series,
    axes: &Axes,
    plot: Rect,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // Points off the x range (a fixed range narrower than the data) are not drawn.
    let (lo, hi) = (axes.x.0.min(axes.x.1), axes.x.0.max(axes.x.1));
    let base = area.get_base_pixel();
    let local = |p: (i32, i32)| (p.0 - base.0, p.1 - base.1);
    let marked = s.marker_indices();
    for (i, &(x, y)) in s.points.iter().enumerate() {
        let Some(px) = axes.plot_x(x).filter(|px| (lo..=hi).contains(px)) else {
            continue;
        };
        if usable(y, axes.log) {
            if let (Some(m), true) = (s.marker, marked.contains(&i)) {
                let at = chart.backend_coord(&(px, axes.plot_y(y)));
                if plot.contains(at) {
                    points.push(at);
                    draw_marker_px(area, local(at), m, s.color)?;
                }
            }
            continue;
        }
        let top = !y.is_finite();
        let at = chart.backend_coord(&(px, axes.strip_middle(top)));
        points.push(at);
        if top {
            draw_marker_px(area, local(at), Marker::Cross, s.color)?;
        } else {
            let (cx, cy) = local(at);
            area.draw(&Polygon::new(
                vec![(cx - 8, cy - 7), (cx + 8, cy - 7), (cx, cy + 7)],
                s.color.filled(),
            ))
            .map_err(failed("drawing marker"))?;
        }
    }
    Ok(())
}

/// The panel's notes, each beside its point (above or below it, whichever covers fewer of the
/// `data` points drawn), pushed down (or up) where two would overlap and kept inside the plot;
/// returns their boxes in PNG pixels.
fn draw_notes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    panel: &Panel,
    axes: &Axes,
    fonts: Fonts,
    plot: Rect,
    data: &[(i32, i32)],
) -> Result<Vec<Rect>>
where
    DB::ErrorType: 'static,
{
    let style = text_style(fonts.legend);
    let mut boxes: Vec<(Rect, &Note)> = Vec::new();
    for note in &panel.notes {
        let (Some(x), true) = (axes.plot_x(note.x), usable(note.y, axes.log)) else {
            continue;
        };
        let at = chart.backend_coord(&(x, axes.plot_y(note.y)));
        if !plot.contains(at) {
            continue;
        }
        let (w, h) = area
            .estimate_text_size(&note.text, &style)
            .map_err(failed("measuring note"))?;
        let (w, h) = (w as i32 + 8, h as i32 + 6);
        let x0 = (at.0 + note.offset.0).clamp(plot.x0 + 2, (plot.x1 - w - 2).max(plot.x0 + 2));
        // Above the point or below it, whichever covers fewer drawn data points.
        let place = |y: i32| {
            let y0 = y.clamp(plot.y0 + 2, (plot.y1 - h - 2).max(plot.y0));
            Rect::new(x0, y0, x0 + w, y0 + h)
        };
        let above = place(at.1 - note.offset.1 - h / 2);
        let below = place(at.1 + note.offset.1 - h / 2);
        let covered = |r: &Rect| data.iter().filter(|p| r.contains(**p)).count();
        let best = if covered(&below) < covered(&above) {
            below
        } else {
            above
        };
        boxes.push((best, note));
    }
    // Top to bottom, each below any earlier box it would overlap; a run off the bottom moves
    // back up above the neighbours below it (boxes beside it, not above or below, are no
    // neighbours).
    boxes.sort_by_key(|b| b.0.y0);
    for i in 1..boxes.len() {
        for j in 0..i {
            let prev = boxes[j].0;
            let cur = &mut boxes[i].0;
            if cur.overlaps(&prev) {
                let h = cur.height();
                cur.y0 = prev.y1 + 2;
                cur.y1 = cur.y0 + h;
            }
        }
    }
    let n = boxes.len();
    for i in (0..n).rev() {
        let cur = boxes[i].0;
        let limit = boxes[i + 1..]
            .iter()
            .filter(|b| b.0.x0 < cur.x1 && cur.x0 < b.0.x1)
            .map(|b| b.0.y0 - 2)
            .fold(plot.y1 - 2, i32::min);
        let cur = &mut boxes[i].0;
        if cur.y1 > limit && n > 1 {
            let h = cur.height();
            cur.y1 = limit;
            cur.y0 = limit - h;
        }
    }
    let base = area.get_base_pixel();
    let anchor = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Top,
    );
    for (r, note) in &boxes {
        let local = |x: i32, y: i32| (x - base.0, y - base.1);
        area.draw(&Rectangle::new(
            [local(r.x0, r.y0), local(r.x1, r.y1)],
            WHITE.mix(0.85).filled(),
        ))
        .map_err(failed("drawing note"))?;
        let dark = RGBColor(
            (note.color.0 as f64 * 0.75) as u8,
            (note.color.1 as f64 * 0.75) as u8,
            (note.color.2 as f64 * 0.75) as u8,
        );
        area.draw_text(
            &note.text,
            &style.color(&dark).pos(anchor),
            local(r.x0 + 4, r.y0 + 3),
        )
        .map_err(failed("drawing note"))?;
    }
    Ok(boxes.into_iter().map(|b| b.0).collect())
}

/// In place of a chart that has nothing to show: `caption` on top and `message` in `color`,
/// centred in a frame where the plot would be; returns the frame as the panel's plot area (no
/// data point).
pub fn draw_message_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    message: &str,
    color: RGBColor,
) -> Result<PanelLayout>
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let centre = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    let caption_style = TextStyle::from((FAMILY, 30).into_font()).pos(centre);
    area.draw_text(caption, &caption_style, (w / 2, 30))
        .map_err(failed("drawing message panel"))?;
    let frame = (106, 70, w - 16, h - 86);
    area.draw(&Rectangle::new(
        [(frame.0, frame.1), (frame.2, frame.3)],
        ShapeStyle::from(&BLACK.mix(0.4)).stroke_width(1),
    ))
    .map_err(failed("drawing message panel"))?;
    let text = TextStyle::from((FAMILY, 34).into_font())
        .color(&color)
        .pos(centre);
    let mid = ((frame.0 + frame.2) / 2, (frame.1 + frame.3) / 2);
    area.draw_text(message, &text, mid)
        .map_err(failed("drawing message panel"))?;
    let base = area.get_base_pixel();
    Ok(PanelLayout {
        caption: caption.to_string(),
        plot: Rect::new(
            base.0 + frame.0,
            base.1 + frame.1,
            base.0 + frame.2,
            base.1 + frame.3,
        ),
        points: Vec::new(),
        labels: Vec::new(),
        texts: Vec::new(),
    })
}
