use std::process::ExitCode;

use bn_lab::cli::Cli;
use bn_lab::text::visible_except;
use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    ExitCode::from(2)
                }
                _ => {
                    eprintln!(
                        "Error: {}",
                        visible_except(&bn_lab::flags::clap_error_line(&err), "")
                    );
                    ExitCode::from(2)
                }
            };
        }
    };
    match bn_lab::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, and nothing a file name or a value typed can do to the terminal.
            eprintln!("Error: {}", visible_except(&format!("{err:#}"), ""));
            if bn_lab::flags::is_usage_error(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
