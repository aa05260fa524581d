//! (placeholder: `gait run session …` and `gait verify session-chain` are not implemented yet)

use super::Ctx;
use clap::Args;

#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyChainArgs {
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SessionArgs, ctx: &Ctx) -> u8 {
    super::output::fail(
        args.json,
        "not implemented",
        crate::exit::Category::Internal,
        ctx,
    )
}

pub fn run_verify_chain(args: VerifyChainArgs, ctx: &Ctx) -> u8 {
    super::output::fail(
        args.json,
        "not implemented",
        crate::exit::Category::Internal,
        ctx,
    )
}
