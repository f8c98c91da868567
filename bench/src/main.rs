//! `bitesize-bench`: benchmarks that print figures as ratios against a peer or a ceiling
//! measured in the same run, on the same machine, files and broker. Run through
//! `./scripts/bench`, which installs the peers and starts the broker.

mod ingest;
mod kafka;
mod process;
mod search;
mod server;
mod shipper;
mod soak;
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
    /// Kafka → index through the real server against a bare Tantivy loop on the same records.
    Ingest(ingest::Args),
    /// Search latency on a large index (API and in process), histograms, line → searchable.
    Search(search::Args),
    /// The whole pipeline under chaos (kills, a broker outage, concurrent reads), then an
    /// exact count of what was lost or duplicated. Run through ./scripts/soak.
    Soak(soak::Args),
    /// Concurrent searches, tails and exports against a server (the soak's second process).
    Load(soak::LoadArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Shipper(args) => shipper::Bench::new(args)?.run(),
        Command::Ingest(args) => ingest::run(args),
        Command::Search(args) => search::run(args),
        Command::Soak(args) => {
            if !soak::Soak::new(args)?.run()? {
                // The figures are printed; the exit status says the run failed.
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Load(args) => soak::load::run(args),
    }
}
