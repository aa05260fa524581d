//! (placeholder: this command is not implemented yet)

use super::Ctx;
use clap::Args;

#[derive(Debug, Args)]
pub struct GateEvalArgs {
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: GateEvalArgs, ctx: &Ctx) -> u8 {
    super::output::fail(
        args.json,
        "not implemented",
        crate::exit::Category::Internal,
        ctx,
    )
}
