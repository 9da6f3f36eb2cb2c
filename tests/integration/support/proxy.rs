//! Runs the real `ringgate` binary on a configuration and watches its readiness line and log.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringgate");

pub struct Proxy {
    child: Option<Child>,
    pub pid: u32,
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin endpoint's address, when `[admin]` is configured.
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
}

impl Proxy {
    /// Writes `toml` into a temporary file, starts `ringgate run -c FILE` and waits for the
    /// readiness line.
    pub fn start(toml: &str) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("ringgate.toml");
        std::fs::write(&config_path, toml).expect("write config");
        Proxy::spawn(dir, config_path, "-c")
    }

    /// Starts `ringgate run --nginx-config FILE` on an nginx.conf already written (the
    /// directory is kept alive with the proxy) and waits for the readiness line.
    pub fn start_nginx(dir: tempfile::TempDir, nginx_conf: std::path::PathBuf) -> Proxy {
        Proxy::spawn(dir, nginx_conf, "--nginx-config")
    }

    fn spawn(dir: tempfile::TempDir, config_path: std::path::PathBuf, flag: &str) -> Proxy {
        let mut child = Command::new(BIN)
            .arg("run")
            .arg(flag)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringgate");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if std::env::var_os("RINGGATE_TEST_LOG").is_some() {
                            eprint!("ringgate: {line}");
                        }
                        log2.lock().expect("log").push_str(&line)
                    }
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.starts_with("ringgate ready ") {
                            let _ = tx.send(line.trim().to_string());
                        }
                    }
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut r.take(u64::MAX), &mut std::io::sink());
        });
        let ready = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "ringgate did not print its readiness line within 20s; stderr:\n{}",
                    log.lock().expect("log")
                );
            }
        };
        let listeners = parse_ready(&ready);
        let admin = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("admin="))
            .and_then(|a| a.parse().ok());
        let pid = child.id();
        Proxy {
            child: Some(child),
            pid,
            listeners,
            admin,
            log,
            _dir: dir,
            config_path,
        }
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// The address of the listener named `name`.
    pub fn addr_of(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no listener {name} in {:?}", self.listeners))
            .1
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// True once a log line contains every one of `needles` (waits up to 3 s).
    pub fn log_has(&self, needles: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self
                .log()
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log_has(&[needle])
    }

    /// Asserts that one log line contains all of `needles`.
    #[track_caller]
    pub fn assert_log(&self, needles: &[&str]) {
        assert!(
            self.log_has(needles),
            "no log line contains all of {needles:?}; log:\n{}",
            self.log()
        );
    }

    /// Resident memory of the proxy in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        signal(self.pid, "TERM");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn signal(pid: u32, sig: &str) {
    // kill(1) rather than libc::kill: the package denies `unsafe` code.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(self.pid, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `ringgate ready pid=<pid> workers=<n> listen=<name>@<addr>[,...]`
fn parse_ready(line: &str) -> Vec<(String, SocketAddr)> {
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap_or_else(|| panic!("bad readiness line: {line}"));
    listen
        .split(',')
        .map(|item| {
            let (name, addr) = item
                .rsplit_once('@')
                .unwrap_or_else(|| panic!("bad listener in readiness line: {line}"));
            (
                name.to_string(),
                addr.parse()
                    .unwrap_or_else(|_| panic!("bad address in readiness line: {line}")),
            )
        })
        .collect()
}

/// Runs `ringgate check -c FILE` and returns (exit code, stdout, stderr).
pub fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(path)
        .output()
        .expect("run ringgate check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
