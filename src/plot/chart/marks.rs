//! What marks a point or a line: marker shapes and dash patterns, drawn in pixels (data points,
//! legend samples), and marks moved apart so they do not sit on top of each other.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::failed;

/// A point marker's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Diamond,
    TriangleUp,
    TriangleDown,
    Cross,
}

/// A line's dash pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dash {
    #[default]
    Solid,
    /// 14 px on, 8 off.
    Dashed,
    /// 4 on, 7 off.
    Dotted,
    /// 28 on, 9 off.
    LongDash,
}

impl Dash {
    /// The `n`-th pattern for a second channel such as depth: solid first.
    pub fn nth(n: usize) -> Dash {
        [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::LongDash][n % 4]
    }

    /// `(on, off)` in pixels; `None` for a solid line.
    pub(crate) fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((14, 8)),
            Dash::Dotted => Some((4, 7)),
            Dash::LongDash => Some((28, 9)),
        }
    }
}

/// The `(from, to)` pieces of a `len`-pixel line in the dash pattern.
pub(crate) fn dash_pieces(dash: Dash, len: i32) -> Vec<(i32, i32)> {
    match dash.pattern() {
        None => vec![(0, len)],
        Some((on, off)) => {
            let (on, off) = (on as i32, off as i32);
            let mut out = Vec::new();
            let mut a = 0;
            while a < len {
                out.push((a, (a + on).min(len)));
                a += on + off;
            }
            out
        }
    }
}

/// Radius in pixels of a data marker.
const MARKER_R: i32 = 7;

/// A marker centred at `c` (in `area`'s pixels), white-edged so it reads over lines.
pub(crate) fn draw_marker_px<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: (i32, i32),
    m: Marker,
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let r = MARKER_R;
    let (x, y) = c;
    let fill = color.filled();
    let edge = ShapeStyle::from(&WHITE).stroke_width(1);
    let poly = |pts: Vec<(i32, i32)>| -> Result<()> {
        area.draw(&Polygon::new(pts.clone(), fill))
            .map_err(failed("drawing marker"))?;
        let mut closed = pts;
        closed.push(closed[0]);
        area.draw(&PathElement::new(closed, edge))
            .map_err(failed("drawing marker"))
    };
    match m {
        Marker::Circle => {
            area.draw(&Circle::new(c, r, fill))
                .map_err(failed("drawing marker"))?;
            area.draw(&Circle::new(c, r, edge))
                .map_err(failed("drawing marker"))?;
        }
        Marker::Square => poly(vec![
            (x - r + 1, y - r + 1),
            (x + r - 1, y - r + 1),
            (x + r - 1, y + r - 1),
            (x - r + 1, y + r - 1),
        ])?,
        Marker::Diamond => poly(vec![
            (x, y - r - 2),
            (x + r + 1, y),
            (x, y + r + 2),
            (x - r - 1, y),
        ])?,
        Marker::TriangleUp => poly(vec![(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)])?,
        Marker::TriangleDown => poly(vec![(x, y + r + 1), (x + r + 1, y - r), (x - r - 1, y - r)])?,
        Marker::Cross => {
            let st = ShapeStyle::from(&color).stroke_width(4);
            area.draw(&PathElement::new(vec![(x - r, y - r), (x + r, y + r)], st))
                .map_err(failed("drawing marker"))?;
            area.draw(&PathElement::new(vec![(x - r, y + r), (x + r, y - r)], st))
                .map_err(failed("drawing marker"))?;
        }
    }
    Ok(())
}

/// Move the x of marks that would overlap apart: sorted by `x`, each at least `gap` right of
/// the one before, then the group shifted back left where it would leave `range`. Returns the
/// new x in the order given.
pub fn spread_marks(xs: &[f64], gap: f64, range: (f64, f64)) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = xs.to_vec();
    let mut prev = f64::NEG_INFINITY;
    for &i in &order {
        out[i] = xs[i].max(prev + gap).max(range.0);
        prev = out[i];
    }
    let mut next = f64::INFINITY;
    for &i in order.iter().rev() {
        out[i] = out[i].min(next - gap).min(range.1);
        next = out[i];
    }
    out
}
