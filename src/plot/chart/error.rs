//! Plotters errors as one line of text that says which part of a figure failed.

use anyhow::anyhow;
use plotters::prelude::*;
use plotters_backend::DrawingErrorKind;

/// A `map_err` adapter that turns a plotters error into "`what`: error" on one line, so each
/// failure says which part of a figure it hit.
pub(crate) fn failed<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(DrawingAreaErrorKind<E>) -> anyhow::Error {
    move |e| anyhow!("{what}: {}", plot_error_message(&e))
}

/// The error type of the bitmap backend (plotters does not export its name).
type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

/// A plotters error as one line of Display text: the bitmap backend's own Display is its Debug
/// dump (`ImageError(IoError(Os { code: 28, ... }))`), so its I/O and image errors are
/// rendered by their Display instead (`No space left on device (os error 28)`).
pub fn plot_error_message<E: std::error::Error + Send + Sync + 'static>(
    e: &DrawingAreaErrorKind<E>,
) -> String {
    let backend: &(dyn std::error::Error + 'static) = match e {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::DrawingError(inner)) => inner,
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::FontError(font)) => {
            return format!("font error: {font}");
        }
        other => return other.to_string(),
    };
    if let Some(BitmapError::IOError(io)) = backend.downcast_ref::<BitmapError>() {
        io.to_string()
    } else if let Some(BitmapError::ImageError(image)) = backend.downcast_ref::<BitmapError>() {
        image.to_string()
    } else if let Some(BitmapError::InvalidBuffer) = backend.downcast_ref::<BitmapError>() {
        "the pixel buffer does not fit the figure".to_string()
    } else {
        backend.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitmap backend's error as plotters hands it over.
    fn backend_error(e: BitmapError) -> DrawingAreaErrorKind<BitmapError> {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::DrawingError(e))
    }

    #[test]
    fn plotters_errors_are_one_line_of_display_text() {
        let disk_full = || std::io::Error::from_raw_os_error(28);
        let io = backend_error(BitmapError::IOError(disk_full()));
        let image = backend_error(BitmapError::ImageError(image::ImageError::IoError(
            disk_full(),
        )));
        for e in [io, image] {
            let msg = failed("writing PNG")(e).to_string();
            assert_eq!(msg, "writing PNG: No space left on device (os error 28)");
        }
        let layout: DrawingAreaErrorKind<BitmapError> = DrawingAreaErrorKind::LayoutError;
        assert_eq!(plot_error_message(&layout), "Bad layout");
    }
}
