//! The `gait` binary: parse the command line and run it.
//!
//! Global allocator: jemalloc. `gait mcp serve` holds one hyper connection (two 8 KiB buffers
//! and its task) per idle keep-alive MCP session; with glibc malloc the memory that request
//! processing freed between them stays resident, ~16 KiB of RSS per idle session, against
//! ~8.5 KiB with jemalloc (RSS with 1,000 sessions 31.5 -> 24.4 MiB, idle 14.8 -> 16.0 MiB;
//! proxy throughput the same within the noise of the shared bench machine). Only the binary
//! sets it; the library and its tests use the system allocator.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    gait::cli::main()
}
