//! The `fraudwall` command line: operator commands (blocklist) and the carrier's `run`.

mod explain;
mod feed;
mod suspects;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod operator;
pub mod run;
pub mod simulate;

/// fraudwall: scam-call interception for telephone carriers.
#[derive(Debug, Parser)]
#[command(name = "fraudwall", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Operator(operator::OperatorCommand),
    /// Run the SIP proxy: screen every incoming call, then allow, tag, warn or block it.
    Run(run::RunArgs),
    /// Why a call gets its verdict: each stage of the rule chain, in order.
    Explain(explain::ExplainArgs),
    /// Print or check the `run` configuration file.
    #[command(subcommand)]
    Config(run::ConfigCommand),
    /// Publish a whole compiled list to a feed directory (as a delta or a new base).
    Publish(feed::PublishArgs),
    /// Central feed tools (`fraudwall feed serve`).
    #[command(subcommand)]
    Feed(feed::FeedCommand),
    /// The behavioural detector's suspects from a running node (`--csv`: blocklist rows).
    Suspects(suspects::SuspectsArgs),
    /// Generate a carrier day and replay it through the behavioural detector.
    Simulate(simulate::SimulateArgs),
}

/// Parses the command line, runs the command, and maps errors to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Operator(c) => operator::run(c),
        Command::Run(a) => run::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Config(c) => run::config(c),
        Command::Publish(args) => feed::run_publish(args),
        Command::Feed(cmd) => feed::run(cmd),
        Command::Suspects(a) => suspects::run(a),
        Command::Simulate(a) => simulate::run(a),
    }
}
