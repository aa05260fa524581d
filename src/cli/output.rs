//! Printing command results: sorted one-line JSON with the envelope, or plain text.

use super::Ctx;
use crate::exit::{self, Category};
use serde_json::{Map, Value};

/// Print a `--json` result object (keys sorted) with the envelope keys filled in.
pub fn print_json(obj: Map<String, Value>, category: Option<Category>, ctx: &Ctx) {
    let v = exit::envelope(obj, category, &ctx.correlation_id);
    println!(
        "{}",
        serde_json::to_string(&v).unwrap_or_else(|_| "{}".into())
    );
}

/// Report an error: the JSON envelope on stdout with `--json`, else one line on stderr.
/// Returns the category's exit code.
pub fn fail(json: bool, message: &str, category: Category, ctx: &Ctx) -> u8 {
    if json {
        let v = exit::error_envelope(message, category, &ctx.correlation_id);
        println!(
            "{}",
            serde_json::to_string(&v).unwrap_or_else(|_| "{}".into())
        );
    } else {
        eprintln!("error: {message}");
    }
    category.exit_code()
}

/// A clap parse failure: help/version print and exit 0; anything else exits 6.
pub fn usage_error(err: clap::Error, args: &[String], ctx: &Ctx) -> u8 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            exit::OK
        }
        _ => {
            let json = args.iter().any(|a| a == "--json");
            if json {
                let msg = err.kind().to_string();
                let detail = err.to_string();
                let first = detail
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or(&msg)
                    .trim_start_matches("error: ")
                    .to_string();
                fail(true, &first, Category::InvalidInput, ctx)
            } else {
                let _ = err.print();
                exit::INVALID_INPUT
            }
        }
    }
}
