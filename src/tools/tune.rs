//! `ringgate tune`: host settings for 100k+ connections. `--check` reads what the host has
//! (`/proc/sys`, the process limits in `/proc/self/limits`, io_uring, the CPU count) and
//! prints each setting with its current and recommended value and OK or LOW; without
//! `--check` it prints the recommended kernel settings as a sysctl file.
//!
//! The readings go through a root path, so tests point it at a fake `/proc`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How a setting compares with the recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Meets the recommendation.
    Ok,
    /// Falls short of it.
    Low,
    /// Could not be read here (a container without that /proc file); not counted as short.
    Unknown,
    /// Shown for information only.
    Info,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Low => "LOW",
            Status::Unknown => "N/A",
            Status::Info => "INFO",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The sysctl key, limit or property.
    pub name: String,
    /// What the host has.
    pub current: String,
    /// What 100k+ connections want.
    pub recommended: String,
    /// How they compare.
    pub status: Status,
    /// Why it matters, or how to fix it.
    pub note: String,
}

/// A sysctl with a minimum: `(key, minimum, why)`.
const SYSCTL_MIN: &[(&str, u64, &str)] = &[
    (
        "fs.file-max",
        2_097_152,
        "system-wide open files: one per client and per upstream connection",
    ),
    (
        "fs.nr_open",
        1_048_576,
        "ceiling for a process's nofile limit",
    ),
    (
        "net.core.somaxconn",
        65_535,
        "caps each listener's accept queue (ringgate asks for 4096)",
    ),
    (
        "net.ipv4.tcp_max_syn_backlog",
        65_535,
        "half-open connections kept during handshake bursts",
    ),
    (
        "net.core.netdev_max_backlog",
        16_384,
        "packets queued per CPU before the stack takes them",
    ),
    (
        "net.core.rmem_max",
        16_777_216,
        "largest receive buffer a socket may ask for",
    ),
    (
        "net.core.wmem_max",
        16_777_216,
        "largest send buffer a socket may ask for",
    ),
];

/// Recommended local port range (upstream connections and load generators).
const PORT_RANGE: (u64, u64) = (10_000, 65_535);

/// TCP memory triples (min, default, max) that should be at least these, each number. The
/// last field says whether a lower value is judged: `tcp_mem` is sized to the host's RAM, so it
/// is only reported.
const SYSCTL_TRIPLES: &[(&str, [u64; 3], &str, bool)] = &[
    (
        "net.ipv4.tcp_rmem",
        [4096, 87_380, 16_777_216],
        "per-socket receive buffer: min, default, max (bytes; autotuned up to max)",
        true,
    ),
    (
        "net.ipv4.tcp_wmem",
        [4096, 65_536, 16_777_216],
        "per-socket send buffer: min, default, max (bytes; autotuned up to max)",
        true,
    ),
    (
        "net.ipv4.tcp_mem",
        [786_432, 1_048_576, 1_572_864],
        "pages all TCP sockets may use: low, pressure, high; sized to RAM (these suit 8+ GiB)",
        false,
    ),
];
/// Recommended open-file limit of the ringgate process.
const NOFILE: u64 = 1_048_576;
/// io_uring rings are charged to RLIMIT_MEMLOCK before this kernel.
const MEMLOCK_KERNEL: (u64, u64) = (5, 12);
/// Locked memory that rings need there (a 1024-entry ring per worker uses well under 1 MiB).
const MEMLOCK_MIN: u64 = 64 * 1024 * 1024;

/// The glibc tunable that keeps glibc's memcpy off `rep movsb` for the copies a TLS record
/// needs (8 KiB to 4 MiB). On AMD Zen CPUs glibc before 2.40 uses `rep movsb` there, which is
/// several times slower than its vector loop when source and destination are not aligned
/// alike, as rustls's record copies are not: measured here, a 64 KiB mTLS response cost 62 µs
/// of CPU with the default and 50 µs with this setting. It takes effect at process start,
/// through the environment (the systemd unit, Dockerfile and Deployment in `deploy/` set it).
pub const GLIBC_TUNABLES: &str = "glibc.cpu.x86_rep_movsb_threshold=4194304";

/// What the checker reads; the root is `/` on a real host.
pub struct Host {
    root: PathBuf,
    /// io_uring probe: `Ok` when a ring can be created, else why not.
    io_uring: Result<(), String>,
    cpus: usize,
}

impl Host {
    /// The real host: `/proc`, a real io_uring probe, the CPUs this process may use.
    pub fn real() -> Host {
        Host {
            root: PathBuf::from("/"),
            io_uring: probe_io_uring(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// A host whose `/proc` lives under `root` (tests), with a given probe result and CPUs.
    pub fn at(root: &Path, io_uring: Result<(), String>, cpus: usize) -> Host {
        Host {
            root: root.to_path_buf(),
            io_uring,
            cpus,
        }
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn sysctl(&self, key: &str) -> Option<String> {
        self.read(&format!("proc/sys/{}", key.replace('.', "/")))
    }

    /// Soft and hard values of a limit in `/proc/self/limits` (`None` = unlimited).
    fn limit(&self, name: &str) -> Option<(Option<u64>, Option<u64>)> {
        let text = self.read("proc/self/limits")?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        let mut it = line[name.len()..].split_whitespace();
        let v = |s: Option<&str>| -> Option<Option<u64>> {
            match s? {
                "unlimited" => Some(None),
                n => n.parse().ok().map(Some),
            }
        };
        Some((v(it.next())?, v(it.next())?))
    }

    /// Every check, in report order.
    pub fn checks(&self) -> Vec<Check> {
        let mut out: Vec<Check> = SYSCTL_MIN
            .iter()
            .map(|&(key, min, why)| self.sysctl_min_check(key, min, why))
            .collect();
        out.extend(
            SYSCTL_TRIPLES
                .iter()
                .map(|&(key, min, why, judged)| self.sysctl_triple_check(key, min, why, judged)),
        );
        out.push(self.port_range_check());
        out.push(self.tw_reuse_check());
        out.push(self.nofile_check());
        out.push(self.memlock_check());
        out.push(self.io_uring_disabled_check());
        out.push(self.io_uring_check());
        out.push(self.memcpy_check());
        out.push(Check {
            name: "CPUs".into(),
            current: self.cpus.to_string(),
            recommended: "one worker per CPU".into(),
            status: Status::Info,
            note: format!(
                "runtime.workers defaults to {}; pin IRQs away from worker CPUs on small hosts",
                self.cpus
            ),
        });
        out
    }

    /// A sysctl that should be at least `min`.
    fn sysctl_min_check(&self, key: &str, min: u64, why: &str) -> Check {
        match self.sysctl(key).and_then(|v| parse_u64(&v)) {
            Some(v) => Check {
                name: key.into(),
                current: v.to_string(),
                recommended: format!(">= {min}"),
                status: if v >= min { Status::Ok } else { Status::Low },
                note: why.into(),
            },
            None => unknown(key, format!(">= {min}"), why),
        }
    }

    /// A sysctl of three numbers, each of which should be at least the recommended one.
    fn sysctl_triple_check(&self, key: &str, min: [u64; 3], why: &str, judged: bool) -> Check {
        let want = format!(">= {} {} {}", min[0], min[1], min[2]);
        match self.sysctl(key).and_then(|v| parse_triple(&v)) {
            Some(v) => Check {
                name: key.into(),
                current: format!("{} {} {}", v[0], v[1], v[2]),
                recommended: want,
                status: if !judged {
                    Status::Info
                } else if v.iter().zip(min).all(|(have, want)| *have >= want) {
                    Status::Ok
                } else {
                    Status::Low
                },
                note: why.into(),
            },
            None => unknown(key, want, why),
        }
    }

    /// The local port range: at least as many ports as the recommended range has.
    fn port_range_check(&self) -> Check {
        let key = "net.ipv4.ip_local_port_range";
        let want = format!(
            "{} {} (>= {} ports)",
            PORT_RANGE.0,
            PORT_RANGE.1,
            span(PORT_RANGE)
        );
        let why = "ephemeral ports for upstream connections";
        match self.sysctl(key).and_then(|v| parse_pair(&v)) {
            Some(r) => Check {
                name: key.into(),
                current: format!("{} {} ({} ports)", r.0, r.1, span(r)),
                recommended: want,
                status: if span(r) >= span(PORT_RANGE) {
                    Status::Ok
                } else {
                    Status::Low
                },
                note: why.into(),
            },
            None => unknown(key, want, why),
        }
    }

    /// `tcp_tw_reuse`: 1, so that upstream connections reuse TIME_WAIT ports.
    fn tw_reuse_check(&self) -> Check {
        let key = "net.ipv4.tcp_tw_reuse";
        let why =
            "reuse TIME_WAIT ports for new outgoing (upstream) connections; 2 = loopback only";
        match self.sysctl(key).and_then(|v| parse_u64(&v)) {
            Some(v) => Check {
                name: key.into(),
                current: v.to_string(),
                recommended: "1".into(),
                status: if v == 1 { Status::Ok } else { Status::Low },
                note: why.into(),
            },
            None => unknown(key, "1".into(), why),
        }
    }

    /// The process's open-file limit: one descriptor per connection.
    fn nofile_check(&self) -> Check {
        match self.limit("Max open files") {
            Some((soft, hard)) => Check {
                name: "nofile (RLIMIT_NOFILE)".into(),
                current: format!("{} soft, {} hard", show(soft), show(hard)),
                recommended: format!(">= {NOFILE}"),
                status: if soft.is_none_or(|s| s >= NOFILE) {
                    Status::Ok
                } else {
                    Status::Low
                },
                note: "one file descriptor per connection: ulimit -n, LimitNOFILE=, limits.conf"
                    .into(),
            },
            None => unknown(
                "nofile (RLIMIT_NOFILE)",
                format!(">= {NOFILE}"),
                "one file descriptor per connection",
            ),
        }
    }

    /// The locked-memory limit, which counts only on kernels that charge io_uring rings to it.
    fn memlock_check(&self) -> Check {
        let kernel = self.read("proc/sys/kernel/osrelease");
        let charged = kernel
            .as_deref()
            .and_then(kernel_version)
            .is_none_or(|v| v < MEMLOCK_KERNEL);
        let Some((soft, hard)) = self.limit("Max locked memory") else {
            return unknown(
                "memlock (RLIMIT_MEMLOCK)",
                format!(">= {} MiB", MEMLOCK_MIN >> 20),
                "io_uring rings on kernels before 5.12",
            );
        };
        let enough = soft.is_none_or(|s| s >= MEMLOCK_MIN);
        Check {
            name: "memlock (RLIMIT_MEMLOCK)".into(),
            current: format!("{} soft, {} hard", show_bytes(soft), show_bytes(hard)),
            recommended: if charged {
                format!(">= {} MiB", MEMLOCK_MIN >> 20)
            } else {
                "any (kernel >= 5.12 does not charge rings to it)".into()
            },
            status: if enough || !charged {
                Status::Ok
            } else {
                Status::Low
            },
            note: format!(
                "io_uring rings count against it on kernels before 5.12 (this one: {})",
                kernel.as_deref().unwrap_or("unknown")
            ),
        }
    }

    /// `kernel.io_uring_disabled`: 0, or absent on kernels before 6.6.
    fn io_uring_disabled_check(&self) -> Check {
        let key = "kernel.io_uring_disabled";
        match self.sysctl(key).and_then(|v| parse_u64(&v)) {
            Some(v) => Check {
                name: key.into(),
                current: v.to_string(),
                recommended: "0".into(),
                status: if v == 0 { Status::Ok } else { Status::Low },
                note:
                    "1: only the io_uring_group may use it, 2: nobody; workers fall back to epoll"
                        .into(),
            },
            // Kernels before 6.6 have no such switch: io_uring is on.
            None => Check {
                name: key.into(),
                current: "absent (kernel < 6.6)".into(),
                recommended: "0".into(),
                status: Status::Ok,
                note: "no switch on this kernel".into(),
            },
        }
    }

    /// Whether this process could create a ring.
    fn io_uring_check(&self) -> Check {
        Check {
            name: "io_uring".into(),
            current: match &self.io_uring {
                Ok(()) => "available".into(),
                Err(e) => format!("unavailable: {e}"),
            },
            recommended: "available".into(),
            status: if self.io_uring.is_ok() {
                Status::Ok
            } else {
                Status::Low
            },
            note: "without it workers run on epoll (legacy driver), slower".into(),
        }
    }
}

impl Host {
    /// Whether this process runs with the memcpy tunable where the CPU needs it.
    fn memcpy_check(&self) -> Check {
        let name = "GLIBC_TUNABLES (memcpy)";
        let want = format!("GLIBC_TUNABLES={GLIBC_TUNABLES}");
        let Some(cpuinfo) = self.read("proc/cpuinfo") else {
            return unknown(name, want, "large copies in TLS records (AMD CPUs)");
        };
        let env = self.read("proc/self/environ").unwrap_or_default();
        let set = env
            .split('\0')
            .filter_map(|kv| kv.strip_prefix("GLIBC_TUNABLES="))
            .any(|v| v.contains("glibc.cpu.x86_rep_movsb_threshold="));
        let current = if set { "set" } else { "unset" };
        if !cpuinfo.contains("AuthenticAMD") {
            return Check {
                name: name.into(),
                current: current.into(),
                recommended: "not needed on this CPU".into(),
                status: Status::Info,
                note: "glibc's rep movsb is slow on AMD Zen only".into(),
            };
        }
        Check {
            name: name.into(),
            current: current.into(),
            recommended: want,
            status: if set { Status::Ok } else { Status::Low },
            note: "AMD CPU: glibc's rep movsb makes TLS record copies slow (about 20% of the CPU of a 64 KiB response); set in ringgate's environment".into(),
        }
    }
}

/// True on an AMD CPU when this process runs without the memcpy tunable: the startup log
/// then says how to set it.
pub fn memcpy_tunable_missing() -> bool {
    Host::at(Path::new("/"), Ok(()), 1).memcpy_check().status == Status::Low
}

fn unknown(name: &str, recommended: String, why: &str) -> Check {
    Check {
        name: name.into(),
        current: "unreadable".into(),
        recommended,
        status: Status::Unknown,
        note: why.into(),
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

fn parse_triple(s: &str) -> Option<[u64; 3]> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn parse_pair(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

fn span(r: (u64, u64)) -> u64 {
    (r.1 + 1).saturating_sub(r.0)
}

fn show(v: Option<u64>) -> String {
    v.map_or("unlimited".into(), |n| n.to_string())
}

fn show_bytes(v: Option<u64>) -> String {
    match v {
        None => "unlimited".into(),
        Some(n) if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        Some(n) if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        Some(n) => format!("{n} B"),
    }
}

/// `6.1.0-18-amd64` -> (6, 1).
fn kernel_version(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Whether an io_uring instance can be created here (kernel support, seccomp, sysctl).
pub fn probe_io_uring() -> Result<(), String> {
    io_uring::IoUring::new(8)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The report as printed, and whether everything meets the recommendation.
pub fn render(checks: &[Check]) -> (String, bool) {
    let w = |f: fn(&Check) -> usize, head: &str| {
        checks.iter().map(f).max().unwrap_or(0).max(head.len())
    };
    let (wn, wc, wr) = (
        w(|c| c.name.len(), "setting"),
        w(|c| c.current.len(), "current"),
        w(|c| c.recommended.len(), "recommended"),
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<wn$}  {:<wc$}  {:<wr$}  status",
        "setting", "current", "recommended"
    );
    for c in checks {
        let _ = writeln!(
            s,
            "{:<wn$}  {:<wc$}  {:<wr$}  {:<4}  {}",
            c.name,
            c.current,
            c.recommended,
            c.status.label(),
            c.note
        );
    }
    let low: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Low)
        .map(|c| c.name.as_str())
        .collect();
    let unknown = checks
        .iter()
        .filter(|c| c.status == Status::Unknown)
        .count();
    if low.is_empty() {
        let _ = write!(s, "verdict: OK: this host is ready for 100k+ connections");
    } else {
        let _ = write!(
            s,
            "verdict: LOW: {} setting{} short for 100k+ connections ({}); see tuning/README.md",
            low.len(),
            if low.len() == 1 { "" } else { "s" },
            low.join(", ")
        );
    }
    if unknown > 0 {
        let _ = write!(s, " ({unknown} not readable here)");
    }
    s.push('\n');
    (s, low.is_empty())
}

/// The recommended kernel settings as a sysctl.d file.
pub fn sysctl_file() -> String {
    let mut s = String::from("# ringgate: kernel settings for 100k+ connections (ringgate tune)\n");
    for &(key, min, why) in SYSCTL_MIN {
        let _ = writeln!(s, "# {why}\n{key} = {min}");
    }
    let _ = writeln!(
        s,
        "# ephemeral ports for upstream connections\nnet.ipv4.ip_local_port_range = {} {}",
        PORT_RANGE.0, PORT_RANGE.1
    );
    let _ = writeln!(
        s,
        "# reuse TIME_WAIT ports for new outgoing connections\nnet.ipv4.tcp_tw_reuse = 1"
    );
    for &(key, min, why, _) in SYSCTL_TRIPLES {
        let _ = writeln!(s, "# {why}\n{key} = {} {} {}", min[0], min[1], min[2]);
    }
    let _ = writeln!(
        s,
        "# io_uring for every process (kernels 6.6+; 1 or 2 make workers fall back to epoll)\nkernel.io_uring_disabled = 0"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max locked memory         8388608              8388608              bytes
Max open files            1024                 524288               files
";

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        for (rel, text) in files {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(d.path()))
                .unwrap_or_else(|e| panic!("mkdir: {e}"));
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("write: {e}"));
        }
        d
    }

    fn tuned() -> Vec<(&'static str, String)> {
        let mut v: Vec<(&str, String)> = SYSCTL_MIN
            .iter()
            .map(|&(k, min, _)| (k, format!("{min}\n")))
            .collect();
        v.push(("net.ipv4.ip_local_port_range", "10000\t65535\n".into()));
        v.push(("net.ipv4.tcp_tw_reuse", "1\n".into()));
        for &(k, min, _, _) in SYSCTL_TRIPLES {
            v.push((k, format!("{}\t{}\t{}\n", min[0], min[1], min[2])));
        }
        v.push(("kernel.io_uring_disabled", "0\n".into()));
        v.push(("kernel.osrelease", "6.1.0-18-amd64\n".into()));
        v
    }

    fn host(sysctls: &[(&str, String)], limits: &str, uring: Result<(), String>) -> Vec<Check> {
        let mut files: Vec<(String, String)> = sysctls
            .iter()
            .map(|(k, v)| (format!("proc/sys/{}", k.replace('.', "/")), v.clone()))
            .collect();
        files.push(("proc/self/limits".into(), limits.into()));
        files.push(("proc/cpuinfo".into(), "vendor_id\t: GenuineIntel\n".into()));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let d = fake(&refs);
        Host::at(d.path(), uring, 4).checks()
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn a_tuned_host_passes() {
        let limits = LIMITS.replace(
            "1024                 524288",
            "1048576              1048576",
        );
        let c = host(&tuned(), &limits, Ok(()));
        assert!(
            c.iter()
                .all(|c| matches!(c.status, Status::Ok | Status::Info)),
            "{c:#?}"
        );
        let (text, ok) = render(&c);
        assert!(ok);
        assert!(text.contains("verdict: OK"), "{text}");
        assert!(text.contains("net.core.somaxconn"));
        assert!(text.contains("CPUs"));
        // Kernel >= 5.12: memlock does not matter for io_uring.
        assert_eq!(status(&c, "memlock (RLIMIT_MEMLOCK)"), Status::Ok);
    }

    #[test]
    fn the_memcpy_tunable_is_wanted_on_amd_only() {
        let amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\n";
        let intel = "processor\t: 0\nvendor_id\t: GenuineIntel\n";
        let with = format!("PATH=/bin\0GLIBC_TUNABLES={GLIBC_TUNABLES}\0");
        let check = |cpu: &str, env: &str| {
            let d = fake(&[("proc/cpuinfo", cpu), ("proc/self/environ", env)]);
            Host::at(d.path(), Ok(()), 2).memcpy_check()
        };
        let c = check(amd, "PATH=/bin\0");
        assert_eq!((c.status, c.current.as_str()), (Status::Low, "unset"));
        assert!(c.recommended.contains("x86_rep_movsb_threshold=4194304"));
        assert_eq!(check(amd, &with).status, Status::Ok);
        assert_eq!(check(intel, "PATH=/bin\0").status, Status::Info);
        let d = fake(&[]);
        assert_eq!(
            Host::at(d.path(), Ok(()), 2).memcpy_check().status,
            Status::Unknown
        );
    }

    #[test]
    fn a_default_host_falls_short_and_says_what() {
        let mut s = tuned();
        for (k, v) in s.iter_mut() {
            match *k {
                "net.core.somaxconn" => *v = "4096\n".into(),
                "net.ipv4.ip_local_port_range" => *v = "32768\t60999\n".into(),
                "net.ipv4.tcp_tw_reuse" => *v = "2\n".into(),
                "kernel.io_uring_disabled" => *v = "2\n".into(),
                "kernel.osrelease" => *v = "5.10.0-28-amd64\n".into(),
                _ => {}
            }
        }
        let c = host(
            &s,
            LIMITS,
            Err("Operation not permitted (os error 1)".into()),
        );
        assert_eq!(status(&c, "net.core.somaxconn"), Status::Low);
        assert_eq!(status(&c, "net.ipv4.ip_local_port_range"), Status::Low);
        assert_eq!(status(&c, "net.ipv4.tcp_tw_reuse"), Status::Low);
        assert_eq!(status(&c, "kernel.io_uring_disabled"), Status::Low);
        assert_eq!(status(&c, "io_uring"), Status::Low);
        assert_eq!(status(&c, "nofile (RLIMIT_NOFILE)"), Status::Low);
        // 8 MiB locked memory on a 5.10 kernel: rings are charged there.
        assert_eq!(status(&c, "memlock (RLIMIT_MEMLOCK)"), Status::Low);
        assert_eq!(status(&c, "fs.nr_open"), Status::Ok);
        let nofile = c
            .iter()
            .find(|c| c.name.starts_with("nofile"))
            .map(|c| c.current.clone());
        assert_eq!(nofile.as_deref(), Some("1024 soft, 524288 hard"));
        let (text, ok) = render(&c);
        assert!(!ok);
        assert!(text.contains("verdict: LOW: 7 settings short"), "{text}");
        assert!(text.contains("32768 60999 (28232 ports)"), "{text}");
    }

    #[test]
    fn missing_files_are_not_counted_as_short() {
        let d = fake(&[("proc/sys/fs/nr_open", "1048576\n")]);
        let c = Host::at(d.path(), Ok(()), 1).checks();
        assert_eq!(status(&c, "fs.nr_open"), Status::Ok);
        assert_eq!(status(&c, "net.core.somaxconn"), Status::Unknown);
        assert_eq!(status(&c, "nofile (RLIMIT_NOFILE)"), Status::Unknown);
        // No switch before 6.6: io_uring is on.
        assert_eq!(status(&c, "kernel.io_uring_disabled"), Status::Ok);
        let (text, ok) = render(&c);
        assert!(ok, "{text}");
        assert!(text.contains("not readable here"), "{text}");
    }

    #[test]
    fn unlimited_limits_and_parsing() {
        let limits = "Max locked memory         unlimited            unlimited            bytes\nMax open files            unlimited            unlimited            files\n";
        let mut s = tuned();
        s.retain(|(k, _)| *k != "kernel.osrelease");
        let c = host(&s, limits, Ok(()));
        assert_eq!(status(&c, "nofile (RLIMIT_NOFILE)"), Status::Ok);
        assert_eq!(status(&c, "memlock (RLIMIT_MEMLOCK)"), Status::Ok);
        assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(kernel_version("4.19"), Some((4, 19)));
        assert_eq!(parse_pair("1024 \t 65535"), Some((1024, 65535)));
        assert_eq!(show_bytes(Some(65536)), "64 KiB");
        assert_eq!(show_bytes(Some(8 << 20)), "8 MiB");
        assert!(sysctl_file().contains("net.core.somaxconn = 65535"));
    }

    #[test]
    fn sysctl_file_sets_what_the_shipped_tuning_file_sets() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/sysctl.conf"))
                .unwrap_or_else(|e| panic!("tuning/sysctl.conf: {e}"));
        let ours = sysctl_file();
        let settings = |text: &str| -> Vec<(String, String)> {
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim().to_string(),
                        v.split_whitespace().collect::<Vec<_>>().join(" "),
                    )
                })
                .collect()
        };
        let ours = settings(&ours);
        // Every key the shipped file sets is written, at a value no higher number by number:
        // tune writes the minimum a check accepts, the shipped file may set more.
        for (key, value) in settings(&shipped) {
            let Some((_, mine)) = ours.iter().find(|(k, _)| *k == key) else {
                panic!("ringgate tune does not write {key} (tuning/sysctl.conf sets {value})");
            };
            let numbers = |v: &str| -> Vec<u64> {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            };
            let (mine_n, theirs) = (numbers(mine), numbers(&value));
            assert_eq!(mine_n.len(), theirs.len(), "{key}: {mine} vs {value}");
            assert!(
                mine_n.iter().zip(&theirs).all(|(a, b)| a <= b),
                "{key}: tune writes {mine}, the shipped file {value}"
            );
        }
    }

    #[test]
    fn tcp_memory_triples_are_checked_number_by_number() {
        let sysctls = [
            ("net.ipv4.tcp_rmem", "4096\t131072\t33554432\n".to_string()),
            ("net.ipv4.tcp_wmem", "4096\t16384\t4194304\n".to_string()),
        ];
        let c = host(&sysctls, LIMITS, Ok(()));
        assert_eq!(status(&c, "net.ipv4.tcp_rmem"), Status::Ok);
        assert_eq!(status(&c, "net.ipv4.tcp_wmem"), Status::Low);
        assert_eq!(status(&c, "net.ipv4.tcp_mem"), Status::Unknown);
        let mem = [("net.ipv4.tcp_mem", "100\t200\t300\n".to_string())];
        let c = host(&mem, LIMITS, Ok(()));
        assert_eq!(
            status(&c, "net.ipv4.tcp_mem"),
            Status::Info,
            "sized to RAM: reported only"
        );
    }
}
