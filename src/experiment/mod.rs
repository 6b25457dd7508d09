//! One runner per experiment. Each takes a validated config and returns a `Serialize` results
//! struct; the CLI writes it to JSON and the plot code draws from the same struct.

pub mod bench;
pub mod grad_norms;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod train;

use serde::Serialize;

/// Which tool and version produced a results file.
#[derive(Clone, Debug, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
