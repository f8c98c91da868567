//! `bitesize-bench`: benchmarks that print figures as ratios against a peer or a ceiling
//! measured in the same run, on the same machine, files and broker. Run through
//! `./scripts/bench`, which installs the peers and starts the broker.

mod kafka;
mod process;
mod shipper;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bitesize-bench", about = "Bitesize benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The shipper against rsyslog (imfile + omkafka) and a bare rdkafka producer.
    Shipper(shipper::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Shipper(args) => shipper::Bench::new(args)?.run(),
    }
}
