//! Colours: the Okabe-Ito palette, warm and cool sets of it, and a sequential ramp.

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

/// Curve colours for arms without BatchNorm (warm) and with it (cool), from the Okabe-Ito
/// palette; figures pair them with a marker shape ([`norm_marker`]) so the arms also read apart
/// in black and white.
pub const WARM: [RGBColor; 3] = [
    okabe_ito::VERMILLION,
    okabe_ito::ORANGE,
    okabe_ito::REDDISH_PURPLE,
];

pub const COOL: [RGBColor; 4] = [
    okabe_ito::BLUE,
    okabe_ito::SKY_BLUE,
    okabe_ito::BLUISH_GREEN,
    okabe_ito::BLACK,
];
