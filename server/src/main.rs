//! `bitesize`: the server binary.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BITESIZE_LOG")
                .unwrap_or_else(|_| "info,rdkafka=warn,tantivy=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = bitesize_server::cli::Cli::parse();
    match bitesize_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bitesize: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
