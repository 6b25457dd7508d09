//! The one font every figure writes in (DejaVu Sans, embedded so text renders on machines
//! without system fonts; licence in `src/plot/DejaVuSans-LICENSE.txt`), and the text sizes of
//! detail figures and slides.

use std::sync::Once;

use plotters::prelude::*;

/// DejaVu Sans, TrueType (also served to the live page as `/font.ttf`).
pub const FONT: &[u8] = include_bytes!("../DejaVuSans.ttf");

/// The family name every plot asks for.
pub const FAMILY: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Register the embedded font with plotters (idempotent).
pub fn register_font() {
    REGISTER.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // The bytes are a valid TrueType font shipped with the crate.
            plotters::style::register_font(FAMILY, style, FONT)
                .unwrap_or_else(|_| unreachable!("embedded font is valid"));
        }
    });
}

/// Font sizes of a figure's text, in pixels.
#[derive(Clone, Copy, Debug)]
pub struct Fonts {
    pub caption: u32,
    pub axis: u32,
    pub tick: u32,
    pub legend: u32,
}

impl Fonts {
    /// Detail figures, read at home.
    pub const DETAIL: Fonts = Fonts {
        caption: 30,
        axis: 26,
        tick: 22,
        legend: 22,
    };
    /// Headline figures ([`SLIDE_SIZE`](super::compose::SLIDE_SIZE)): still about 14 px high when a projector shows the
    /// slide at 1024x768.
    pub const SLIDE: Fonts = Fonts {
        caption: 36,
        axis: 30,
        tick: 27,
        legend: 27,
    };
}

pub(crate) fn text_style(font: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, font).into_font())
}
