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
        #[command(flatten)]
        source: Source,
        /// Override the number of workers.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Validate a configuration (loading every certificate and key) without serving.
    Check {
        #[command(flatten)]
        source: Source,
    },
    /// Report on the configured certificates, keys, CRLs and OCSP responses, as `check`
    /// does after loading (exit 2 on an error).
    Doctor {
        #[command(flatten)]
        source: Source,
    },
    /// Translate an nginx.conf into ringgate's TOML, printed on stdout (warnings on stderr).
    ImportNginx {
        /// The nginx configuration.
        file: PathBuf,
    },
    /// A certificate authority in an `openssl ca` directory: init, issue, revoke, crl,
    /// export-p12, list.
    Ca(ringgate::tools::ca::cli::CaArgs),
    /// Host settings for 100k+ connections: `--check` reports what falls short (exit 1);
    /// without it, prints the recommended sysctl settings.
    Tune {
        /// Read /proc/sys, the process limits, io_uring and the CPUs and compare.
        #[arg(long)]
        check: bool,
    },
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

/// Where the configuration comes from: ringgate's TOML or an nginx.conf.
#[derive(clap::Args, Clone)]
#[group(required = true, multiple = false)]
struct Source {
    /// The TOML configuration.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// An nginx configuration, translated as `import-nginx` does.
    #[arg(long)]
    nginx_config: Option<PathBuf>,
}

impl Source {
    fn path(&self) -> &std::path::Path {
        self.config
            .as_deref()
            .or(self.nginx_config.as_deref())
            .unwrap_or(std::path::Path::new(""))
    }

    /// Loads the configuration. nginx warnings are logged (on stderr, or in the error log
    /// once `run` opened it) like the loader's own warnings, so every WARN line has one
    /// format, at start, in `check` and on reload alike.
    fn load(&self) -> Result<ringgate::config::Config, ringgate::config::ConfigErrors> {
        match &self.nginx_config {
            Some(n) => {
                let t = ringgate::tools::nginx::translate_file(n)?;
                // Warnings first, so they are seen even when loading fails.
                for w in &t.warnings {
                    log::warn!("{w}");
                }
                ringgate::tools::nginx::load_translation(&t, n)
            }
            None => ringgate::config::load(self.path()),
        }
    }
}

/// `--workers` overrides the file, at start and on every reload.
fn override_workers(cfg: &mut ringgate::config::Config, workers: Option<usize>) {
    if let Some(w) = workers {
        cfg.runtime.workers = w.max(1);
        if cfg.runtime.cpus.len() < cfg.runtime.workers {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cfg.runtime.cpus = (0..cfg.runtime.workers).map(|i| i % cores).collect();
        }
    }
}

/// Exit 2 when the doctor found an error, 0 otherwise.
fn doctor_exit(errors: bool) -> ExitCode {
    if errors {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// `check`: load everything, say so, then the doctor's report.
fn check(source: &Source) -> ExitCode {
    match source.load() {
        Ok(c) => {
            println!(
                "{}: configuration is valid ({} listener{}, {} upstream{})",
                source.path().display(),
                c.servers.len(),
                if c.servers.len() == 1 { "" } else { "s" },
                c.upstreams.len(),
                if c.upstreams.len() == 1 { "" } else { "s" }
            );
            doctor_exit(ringgate::tools::doctor::print_report(&c))
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `doctor`: the doctor's report alone (a configuration that does not load exits 2, as in
/// `check`).
fn doctor(source: &Source) -> ExitCode {
    match source.load() {
        Ok(c) => doctor_exit(ringgate::tools::doctor::print_report(&c)),
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `run`: load, open the error log, log the doctor's start findings and serve.
fn run(source: Source, workers: Option<usize>) -> ExitCode {
    let mut cfg = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    override_workers(&mut cfg, workers);
    ringgate::server::logging::init(cfg.runtime.log_level);
    if let Some(path) = &cfg.runtime.error_log {
        if let Err(e) = ringgate::server::logging::log_to_file(path) {
            eprintln!("cannot open the error log {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    // A reload reads the configuration the same way (nginx warnings into the log).
    let loader: ringgate::server::reload::Loader = Box::new(move || {
        let mut cfg = source.load().map_err(|e| e.to_string())?;
        override_workers(&mut cfg, workers);
        Ok(cfg)
    });
    match ringgate::server::run(cfg, loader) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ringgate::server::logging::init(log::LevelFilter::Info);
    match cli.command {
        Command::Check { source } => check(&source),
        Command::Doctor { source } => doctor(&source),
        Command::ImportNginx { file } => match ringgate::tools::nginx::translate_file(&file) {
            Ok(t) => {
                for w in &t.warnings {
                    eprintln!("{w}");
                }
                print!("{}", t.toml);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { source, workers } => run(source, workers),
        Command::Ca(args) => ringgate::tools::ca::cli::run(args),
        Command::Tune { check: false } => {
            print!("{}", ringgate::tools::tune::sysctl_file());
            ExitCode::SUCCESS
        }
        Command::Tune { check: true } => {
            let (text, ok) =
                ringgate::tools::tune::render(&ringgate::tools::tune::Host::real().checks());
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Demo { port, dir } => match ringgate::demo::run(port, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
