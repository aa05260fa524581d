//! `gait version [--json]`.

use super::Ctx;
use clap::Args;
use serde_json::Map;

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VersionArgs, ctx: &Ctx) -> u8 {
    if args.json {
        let mut obj = Map::new();
        obj.insert("ok".into(), true.into());
        obj.insert("version".into(), crate::VERSION.into());
        obj.insert("name".into(), "gait".into());
        super::output::print_json(obj, None, ctx);
    } else {
        println!("gait {}", crate::VERSION);
    }
    crate::exit::OK
}
