//! The chart layer takes any data: every range a report can hand it gets ticks from plotters
//! without hanging or panicking, and panels, slides and heat maps of extreme values draw.

use plotters::coord::types::RangedCoordf64;

use super::compose::{Grid, Slide, figure};
use super::heatmap;
use super::layout::Layout;
use super::marks::Marker;
use super::palette::okabe_ito;
use super::panel::{Note, Panel, Series};
use super::scale::{AXIS_LIMIT, axis_range};

/// Run `f` on a thread and wait at most a minute for it: a hang fails the test instead of
/// stalling it, and a panic fails it with its message.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: still running after 60 s"),
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
    }
}

/// Ends of ranges a report can hand the plot layer: huge, tiny, subnormal, non-finite.
const ENDS: [f64; 19] = [
    f64::MIN,
    -1e308,
    -1e300,
    -1.0,
    -f64::MIN_POSITIVE,
    -5e-324,
    0.0,
    5e-324,
    1e-300,
    1.0,
    1.0 + f64::EPSILON,
    1e15,
    1e300,
    1.000000000000001e300,
    1e308,
    f64::MAX,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
];

#[test]
fn every_axis_range_is_finite_and_plotters_finds_its_ticks() {
    use plotters::coord::ranged1d::Ranged;
    let mut ranges: Vec<(f64, f64)> = Vec::new();
    for &a in &ENDS {
        for &b in &ENDS {
            ranges.push((a, b));
        }
    }
    // Ranges narrower than plotters can place ticks in, at every magnitude.
    for m in [
        5e-324,
        1e-310,
        1e-300,
        1e-10,
        1.0,
        1e10,
        1e300,
        1e306,
        f64::MAX,
    ] {
        for rel in [0.0, 1e-16, 1e-15, 1e-12, 1e-9, 1e-6, 1.0] {
            ranges.push((m, m + m * rel));
            ranges.push((-m - m * rel, -m));
            ranges.push((m, m.next_up()));
        }
    }
    within_a_minute("tick computation", move || {
        for (lo, hi) in ranges {
            let (a, b) = axis_range(lo, hi);
            assert!(
                a.is_finite() && b.is_finite() && a != b,
                "({lo:e}, {hi:e}) -> ({a:e}, {b:e})"
            );
            assert!(a.abs() <= AXIS_LIMIT && b.abs() <= AXIS_LIMIT);
            assert_eq!(lo > hi, a > b, "({lo:e}, {hi:e}) changed direction");
            for n in [1, 2, 3, 5, 8, 11, 12, 30, 120] {
                let ticks = RangedCoordf64::from(a..b).key_points(n);
                assert!(
                    ticks.iter().all(|t| t.is_finite()),
                    "({a:e}, {b:e}): {ticks:?}"
                );
            }
        }
    });
    // Ordinary ranges are left alone.
    assert_eq!(axis_range(-0.5, 3.0), (-0.5, 3.0));
    assert_eq!(axis_range(1e-12, 2e-12), (1e-12, 2e-12));
    assert_eq!(axis_range(5.0, 5.0), (4.5, 5.5));
}

/// A panel of one series through `points`, with a band around it, a note on its first
/// point, a guide at its last value and markers.
fn extreme_panel(caption: &str, log_y: bool, points: Vec<(f64, f64)>) -> Panel {
    let mut p = Panel::new(caption, "x", "y", log_y);
    let mut s = Series::new("data", okabe_ito::BLUE, points.clone());
    s.band = points.iter().map(|&(x, y)| (x, y / 2.0, y * 2.0)).collect();
    s.marker = Some(Marker::Circle);
    p.series.push(s);
    if let (Some(&(x, y)), Some(&(_, last))) = (points.first(), points.last()) {
        p.notes.push(Note {
            x,
            y,
            text: "first".into(),
            color: okabe_ito::BLUE,
            offset: (4, 4),
        });
        p.guides.push((last, "last".into()));
    }
    p
}

#[test]
fn figures_of_extreme_values_are_drawn() {
    const MAX: f64 = f64::MAX;
    let at = |ys: &[f64]| -> Vec<(f64, f64)> {
        ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect()
    };
    let mut panels = vec![
        extreme_panel("±MAX", false, at(&[MAX, -MAX, 1e308, -1e308, 0.0])),
        extreme_panel("±MAX log", true, at(&[MAX, 5e-324, f64::MIN_POSITIVE, 1.0])),
        extreme_panel("near MAX", false, at(&[MAX, MAX.next_down(), MAX])),
        extreme_panel("subnormal", false, at(&[5e-324, 1e-323, 1.5e-323])),
        extreme_panel("subnormal log", true, at(&[5e-324, 1e-323])),
        extreme_panel(
            "narrow at 1e300",
            false,
            at(&[1e300, 1.000000000000001e300]),
        ),
        extreme_panel("repeated MAX", false, at(&[MAX; 4])),
        extreme_panel("repeated -MAX", false, at(&[-MAX; 4])),
        extreme_panel("repeated subnormal", false, at(&[5e-324; 4])),
        extreme_panel("repeated 0", false, at(&[0.0; 4])),
        extreme_panel("repeated 1 log", true, at(&[1.0; 4])),
        extreme_panel("one point", false, at(&[1e308])),
        extreme_panel("x ±MAX", false, vec![(-MAX, 1.0), (MAX, 2.0)]),
        extreme_panel("x subnormal", false, vec![(5e-324, 1.0), (1e-323, 2.0)]),
        extreme_panel("x repeated", false, vec![(1e308, 1.0), (1e308, 2.0)]),
        extreme_panel("no finite value", false, at(&[f64::NAN, f64::INFINITY])),
    ];
    let mut log_x = extreme_panel("log x", false, vec![(5e-324, 1.0), (MAX, 2.0)]);
    log_x.log_x = true;
    panels.push(log_x);
    let mut fixed = extreme_panel("fixed ranges", false, at(&[1e308, -1e308, 0.5]));
    fixed.x_range = Some((0.0, 1.0));
    fixed.y_range = Some((0.0, 1.0));
    panels.push(fixed);
    let mut reversed = extreme_panel("reversed fixed ranges", false, at(&[1.0, 2.0]));
    reversed.x_range = Some((MAX, -MAX));
    reversed.y_range = Some((MAX, -MAX));
    panels.push(reversed);
    let mut nan_range = extreme_panel("NaN ranges", false, at(&[1.0, 2.0]));
    nan_range.x_range = Some((f64::NAN, f64::NAN));
    nan_range.y_range = Some((f64::NAN, 1.0));
    panels.push(nan_range);
    within_a_minute("drawing", move || {
        for p in &panels {
            Grid::new(1, 1, (500, 320))
                .draw_panels("extreme", &p.caption, [p])
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.caption));
            let slide = Slide::new("extreme", &p.caption, vec![p.clone()]);
            slide
                .draw()
                .unwrap_or_else(|e| panic!("{} (slide): {e:#}", p.caption));
        }
        let scales = [
            heatmap::LogScale::of([1e-300, MAX].into_iter(), 8.0),
            heatmap::LogScale::of([5e-324].into_iter(), 8.0),
            heatmap::LogScale {
                lo: -1e300,
                hi: 1e300,
                clipped: true,
            },
            heatmap::LogScale {
                lo: 1e300,
                hi: 1e300,
                clipped: false,
            },
        ];
        let grids: [&[f64]; 5] = [
            &[-MAX, 0.0, MAX],
            &[-1e308, 0.0, 1e308],
            &[5e-324, 1e-323, 1.5e-323],
            &[1.0],
            &[1e300, 1e300, 1e300],
        ];
        for (k, coords) in grids.iter().enumerate() {
            for (j, scale) in scales.iter().enumerate() {
                let n = coords.len();
                let map = heatmap::HeatMap {
                    caption: format!("grid {k}, scale {j}"),
                    x_label: "a".into(),
                    y_label: "b".into(),
                    coords,
                    values: vec![vec![MAX, 5e-324, f64::NAN][..n.min(3)].to_vec(); n],
                    marker: Some(((coords[0], coords[n - 1]), "θ*".into())),
                };
                figure((900, 700), "t", "s", |body| {
                    let (left, right) = body.split_horizontally(600);
                    let mut layout = Layout::default();
                    layout
                        .panels
                        .push(heatmap::draw_heatmap(&left, &map, scale)?);
                    heatmap::draw_colorbar(&right, scale, "loss", true)?;
                    Ok(layout)
                })
                .unwrap_or_else(|e| panic!("{}: {e:#}", map.caption));
            }
        }
    });
}

#[test]
fn a_series_with_no_value_in_one_panel_is_one_shared_legend_line_saying_so() {
    use super::legend::shared_legend;
    let panel = |y: f64| {
        let mut p = Panel::new("p", "x", "y", true);
        p.series = vec![Series::new(
            "SkipInit",
            okabe_ito::BLUISH_GREEN,
            vec![(1.0, y)],
        )];
        p
    };
    // Exactly 0 on a log axis in the first panel, drawn in the other two.
    let items = shared_legend(&[panel(0.0), panel(1.0), panel(2.0)]);
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    assert!(
        labels.contains(&"SkipInit (no finite value in some panels)"),
        "{labels:?}"
    );
    assert_eq!(
        labels.iter().filter(|l| l.starts_with("SkipInit")).count(),
        1,
        "{labels:?}"
    );
    // In no panel at all: said as before.
    let none = shared_legend(&[panel(0.0), panel(0.0)]);
    assert!(
        none.iter().any(|i| i.label == "SkipInit (no finite value)"),
        "{none:?}"
    );
}
