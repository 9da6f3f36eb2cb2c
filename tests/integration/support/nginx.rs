//! nginx beside ringgate: the installed binary, a free port, and nginx run in the foreground
//! on a configuration until dropped, so a test can compare both proxies' answers.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A port free right now (the test then binds it through a proxy's configuration).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The installed nginx, if any.
pub fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Writes `text` as `nginx.conf` in a new temporary folder (kept alive by the caller).
pub fn write_conf(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, text).expect("write nginx.conf");
    (dir, path)
}

/// nginx in the foreground on one configuration until dropped.
pub struct Nginx {
    child: std::process::Child,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts `bin` on `conf` and waits until it listens on `port`.
    pub fn start(bin: &str, conf: &Path, port: u16) -> Nginx {
        let prefix = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(prefix.path().join("logs")).expect("logs");
        let child = Command::new(bin)
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(conf)
            .arg("-g")
            .arg("daemon off; master_process off; error_log stderr;")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            _prefix: prefix,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
