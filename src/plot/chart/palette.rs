//! Colours: the Okabe-Ito palette and a sequential ramp.

use plotters::style::RGBColor;

/// The Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), distinguishable with
/// every common colour-vision deficiency. Yellow is left out: it vanishes on white.
pub mod okabe_ito {
    use plotters::style::RGBColor;
    pub const BLACK: RGBColor = RGBColor(0, 0, 0);
    pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
    pub const SKY_BLUE: RGBColor = RGBColor(86, 180, 233);
    pub const BLUISH_GREEN: RGBColor = RGBColor(0, 158, 115);
    pub const BLUE: RGBColor = RGBColor(0, 114, 178);
    pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
    pub const REDDISH_PURPLE: RGBColor = RGBColor(204, 121, 167);
}

/// A colour from dark blue-violet (`t = 0`) to orange (`t = 1`) (the readable part of plasma).
pub fn ramp(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 4] = [
        (13.0, 8.0, 135.0),
        (126.0, 3.0, 168.0),
        (204.0, 71.0, 120.0),
        (240.0, 140.0, 40.0),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
