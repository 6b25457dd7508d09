//! The shared figure layout: a `Grid` figure is exactly its cells plus the title band, its
//! panels fill the cells in row-major order and cells without a panel stay blank.

use bn_lab::plot::{Grid, Panel, Series, TITLE_HEIGHT};
use plotters::style::RGBColor;

#[test]
fn a_grid_figure_is_its_cells_plus_the_title_band() {
    // The 2 x 2 figures (ics, landscape) keep their former fixed 1800 x 1300 px.
    assert_eq!(Grid::new(2, 2, (900, 595)).size(), (1800, 1300));
}

#[test]
fn panels_fill_the_cells_row_by_row_and_the_cells_left_over_stay_white() {
    let grid = Grid::new(2, 2, (600, 400));
    let mut panel = Panel::new("a panel", "x", "y", false);
    panel.series.push(Series::new(
        "a line",
        RGBColor(214, 39, 40),
        vec![(0.0, 0.0), (1.0, 1.0)],
    ));
    let png = grid
        .draw_panels("a title", "a subtitle", [&panel, &panel, &panel])
        .expect("the figure renders");

    let img = image::load_from_memory(&png.bytes)
        .expect("valid PNG")
        .to_rgb8();
    assert_eq!(img.dimensions(), grid.size());
    let inked = |row: u32, col: u32| {
        let (x0, y0) = (col * 600, TITLE_HEIGHT + row * 400);
        (x0..x0 + 600)
            .flat_map(|x| (y0..y0 + 400).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255])
            .count()
    };
    // The title and subtitle are drawn in the band above the cells.
    let band = (0..img.width())
        .flat_map(|x| (0..TITLE_HEIGHT).map(move |y| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255])
        .count();
    assert!(band > 100, "the title band is blank ({band} pixels inked)");
    for (row, col) in [(0, 0), (0, 1), (1, 0)] {
        assert!(inked(row, col) > 1000, "cell ({row}, {col}) has no panel");
    }
    assert_eq!(inked(1, 1), 0, "the fourth cell has no panel to draw");
}
