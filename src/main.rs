//! The `ringgate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core io_uring edge proxy for mutual TLS.
#[derive(Parser)]
#[command(name = "ringgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a configuration file.
    Run {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// Override the number of workers.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Validate a configuration (loading every certificate and key) without serving.
    Check {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// A certificate authority in an `openssl ca` directory: init, issue, revoke, crl,
    /// export-p12, list.
    Ca(ringgate::ca::cli::CaArgs),
    /// Make a CA and certificates, start a small upstream and serve mTLS on 127.0.0.1.
    Demo {
        /// Port for the mTLS listener (0 picks a free one).
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Where to write the certificates (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ringgate::logging::init(log::LevelFilter::Info);
    match cli.command {
        Command::Check { config } => match ringgate::config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: configuration is valid ({} listener{}, {} upstream{})",
                    config.display(),
                    c.listeners.len(),
                    if c.listeners.len() == 1 { "" } else { "s" },
                    c.upstreams.len(),
                    if c.upstreams.len() == 1 { "" } else { "s" }
                );
                if ringgate::doctor::print_report(&c) {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, workers } => {
            let mut cfg = match ringgate::config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(w) = workers {
                cfg.runtime.workers = w.max(1);
                if cfg.runtime.cpus.len() < cfg.runtime.workers {
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    cfg.runtime.cpus = (0..cfg.runtime.workers).map(|i| i % cores).collect();
                }
            }
            ringgate::logging::init(cfg.runtime.log_level);
            if let Some(path) = &cfg.runtime.error_log {
                if let Err(e) = ringgate::logging::log_to_file(path) {
                    eprintln!("cannot open the error log {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            ringgate::doctor::log_startup(&cfg);
            match ringgate::runtime::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Ca(args) => ringgate::ca::cli::run(args),
        Command::Demo { port, dir } => match ringgate::demo::run(port, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
