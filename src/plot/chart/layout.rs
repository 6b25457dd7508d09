//! Where a figure put things, in pixels of the PNG: every panel's plot area and drawn data
//! points, every legend box and every on-plot label. The drawing code records it as it decides
//! it, so tests can check that no legend covers data without looking at pixels.

use serde::Serialize;

/// A rectangle in PNG pixels, `x0..x1` by `y0..y1` (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn new(x0: i32, y0: i32, x1: i32, y1: i32) -> Self {
        Rect { x0, y0, x1, y1 }
    }

    /// The rectangle of `size` whose upper left corner is `at`.
    pub fn at(at: (i32, i32), size: (u32, u32)) -> Self {
        Rect::new(at.0, at.1, at.0 + size.0 as i32, at.1 + size.1 as i32)
    }

    pub fn contains(&self, p: (i32, i32)) -> bool {
        (self.x0..=self.x1).contains(&p.0) && (self.y0..=self.y1).contains(&p.1)
    }

    /// Whether the two share interior pixels (touching edges do not count).
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    pub fn width(&self) -> i32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> i32 {
        self.y1 - self.y0
    }
}

/// One panel as drawn.
#[derive(Clone, Debug, Serialize)]
pub struct PanelLayout {
    pub caption: String,
    /// The plotting area inside the axes.
    pub plot: Rect,
    /// Every data point drawn (line vertices, band corners, markers, edge marks).
    pub points: Vec<(i32, i32)>,
    /// The labels written on the plot (annotations), as boxes.
    pub labels: Vec<Rect>,
    /// The panel's own text outside the plot: its caption and x-axis label, as boxes (empty
    /// where the drawing code does not measure them).
    #[serde(default)]
    pub texts: Vec<Rect>,
}

/// A whole figure as drawn.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Layout {
    pub size: (u32, u32),
    pub panels: Vec<PanelLayout>,
    /// Every legend box, the panels' own and shared ones.
    pub legends: Vec<Rect>,
}

impl Layout {
    pub fn new(size: (u32, u32)) -> Self {
        Layout {
            size,
            ..Layout::default()
        }
    }

    /// Merge the parts another drawing step recorded.
    pub fn extend(&mut self, other: Layout) {
        self.panels.extend(other.panels);
        self.legends.extend(other.legends);
    }

    /// Every way a legend or a text gets in the way, one line each (empty when none): a legend
    /// box that covers a data point, an on-plot label or a caption, overlaps a plotting area or
    /// another legend, or sticks out of the figure; a caption or x-axis label that overlaps
    /// another one or leaves the figure.
    pub fn collisions(&self) -> Vec<String> {
        let mut out = Vec::new();
        let whole = Rect::new(0, 0, self.size.0 as i32, self.size.1 as i32);
        let texts: Vec<(&str, &Rect)> = self
            .panels
            .iter()
            .flat_map(|p| p.texts.iter().map(move |t| (p.caption.as_str(), t)))
            .collect();
        for (i, (of, t)) in texts.iter().enumerate() {
            if !(whole.contains((t.x0, t.y0)) && whole.contains((t.x1, t.y1))) {
                out.push(format!(
                    "a caption or axis label {t:?} of \"{of}\" leaves the {:?} figure",
                    self.size
                ));
            }
            for (other_of, other) in &texts[i + 1..] {
                if t.overlaps(other) {
                    out.push(format!(
                        "a caption or axis label {t:?} of \"{of}\" overlaps {other:?} of \"{other_of}\""
                    ));
                }
            }
            if let Some(l) = self.legends.iter().find(|l| l.overlaps(t)) {
                out.push(format!(
                    "legend {l:?} covers a caption or axis label {t:?} of \"{of}\""
                ));
            }
        }
        for (i, legend) in self.legends.iter().enumerate() {
            if !(whole.contains((legend.x0, legend.y0)) && whole.contains((legend.x1, legend.y1))) {
                out.push(format!(
                    "legend {i} {legend:?} leaves the {:?} figure",
                    self.size
                ));
            }
            for other in &self.legends[i + 1..] {
                if legend.overlaps(other) {
                    out.push(format!("legend {i} {legend:?} overlaps legend {other:?}"));
                }
            }
            for p in &self.panels {
                if legend.overlaps(&p.plot) {
                    out.push(format!(
                        "legend {i} {legend:?} overlaps the plot area {:?} of \"{}\"",
                        p.plot, p.caption
                    ));
                }
                if let Some(pt) = p.points.iter().find(|pt| legend.contains(**pt)) {
                    out.push(format!(
                        "legend {i} {legend:?} covers the data point {pt:?} of \"{}\"",
                        p.caption
                    ));
                }
                if let Some(l) = p.labels.iter().find(|l| legend.overlaps(l)) {
                    out.push(format!(
                        "legend {i} {legend:?} covers the label {l:?} of \"{}\"",
                        p.caption
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legend_over_a_point_or_a_plot_area_is_a_collision() {
        let panel = PanelLayout {
            caption: "p".into(),
            plot: Rect::new(0, 0, 100, 100),
            points: vec![(50, 50)],
            labels: vec![],
            texts: vec![Rect::new(20, 100, 80, 110)],
        };
        let mut layout = Layout::new((300, 200));
        layout.panels.push(panel);
        layout.legends.push(Rect::new(120, 0, 200, 50));
        assert!(layout.collisions().is_empty());
        layout.legends.push(Rect::new(40, 40, 60, 60));
        let found = layout.collisions();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("plot area") && found[1].contains("(50, 50)"));
        let mut outside = Layout::new((300, 200));
        outside.legends.push(Rect::new(250, 150, 320, 190));
        assert!(outside.collisions()[0].contains("leaves"));
        // Two panels' captions side by side that run into each other.
        let mut captions = Layout::new((300, 200));
        for x in [0, 90] {
            captions.panels.push(PanelLayout {
                caption: "a long caption".into(),
                plot: Rect::new(x, 20, x + 80, 100),
                points: vec![],
                labels: vec![],
                texts: vec![Rect::new(x, 0, x + 100, 15)],
            });
        }
        let found = captions.collisions();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("overlaps"), "{found:?}");
    }
}
