//! `ringgate tune`: the checker reads the real host and gives a verdict with an exit code.

use std::process::Command;

use crate::support::proxy::BIN;

#[test]
fn tune_check_reports_every_setting_with_a_verdict() {
    let out = Command::new(BIN)
        .args(["tune", "--check"])
        .output()
        .expect("run ringgate tune --check");
    let text = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code();
    assert!(matches!(code, Some(0) | Some(1)), "{code:?} {text}");
    for name in [
        "fs.file-max",
        "fs.nr_open",
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_tw_reuse",
        "net.core.netdev_max_backlog",
        "nofile (RLIMIT_NOFILE)",
        "memlock (RLIMIT_MEMLOCK)",
        "kernel.io_uring_disabled",
        "io_uring",
        "CPUs",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let verdict = text.lines().last().unwrap_or_default();
    if code == Some(0) {
        assert!(verdict.starts_with("verdict: OK"), "{text}");
        assert!(!text.contains(" LOW "), "{text}");
    } else {
        assert!(verdict.starts_with("verdict: LOW"), "{text}");
        assert!(text.contains(" LOW "), "{text}");
    }
    // This process's own limit is what the child inherits: the report shows it.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
        let soft = line.split_whitespace().nth(3).unwrap_or("?");
        assert!(text.contains(&format!("{soft} soft")), "{soft}\n{text}");
    }
}

#[test]
fn tune_without_check_prints_a_sysctl_file() {
    let out = Command::new(BIN)
        .arg("tune")
        .output()
        .expect("run ringgate tune");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("net.core.somaxconn = 65535"), "{text}");
    assert!(
        text.contains("net.ipv4.ip_local_port_range = 10000 65535"),
        "{text}"
    );
}
