//! `deploy/`: the Kubernetes manifests, the Dockerfile, the systemd unit and the logrotate
//! snippet cannot be applied here (no cluster, no container engine, no systemd as PID 1), so
//! these tests parse them and check every reference between them, and run the ConfigMap's
//! `ringgate.toml` through the real binary with test certificates in the mounted places.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::DnType;
use serde::Deserialize;
use serde_norway::Value;

use crate::support::client;
use crate::support::client_for;
use crate::support::pki::{LeafSpec, Pki, Usage, Validity};
use crate::support::proxy::{check, BIN};
use crate::support::upstream::{Mode, Upstream};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One YAML document and the file it came from.
struct Doc {
    file: String,
    v: Value,
}

/// Every document of every `*.yaml` in `dir` (not recursive, as `kubectl apply -f DIR`).
fn yaml_docs(dir: &Path) -> Vec<Doc> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read manifest");
        for d in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", f.display()));
            if v.is_null() {
                continue;
            }
            docs.push(Doc {
                file: f.file_name().unwrap().to_string_lossy().into_owned(),
                v,
            });
        }
    }
    docs
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {v:?}"))
}

/// A key holding dots (`ringgate.toml`, `prometheus.io/port`), as a string.
fn lit<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key}"))
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        }
        .unwrap_or_else(|| panic!("missing {path} (at `{part}`)"));
    }
    cur
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    get(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path} is not a list"))
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().expect("label key").to_string(),
                        v.as_str().expect("label value").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A file mode as Kubernetes reads it: its YAML 1.1 parser takes `0440` as octal, while
/// serde_norway (YAML 1.2, the maintained fork of serde_yaml) keeps a leading-zero scalar as a string.
fn k8s_mode(v: &Value) -> u32 {
    match v {
        Value::Number(n) => n.as_u64().expect("mode") as u32,
        Value::String(t) if t.starts_with('0') => u32::from_str_radix(t, 8).expect("octal"),
        other => panic!("not a mode: {other:?}"),
    }
}

/// The manifests, the Secret examples and the ConfigMap's configuration.
struct Deploy {
    docs: Vec<Doc>,
    secrets: Vec<Doc>,
}

impl Deploy {
    fn load() -> Deploy {
        let dir = root().join("deploy/kubernetes");
        Deploy {
            docs: yaml_docs(&dir),
            secrets: yaml_docs(&dir.join("secrets")),
        }
    }

    fn one(&self, kind: &str) -> &Value {
        let found: Vec<&Doc> = self
            .docs
            .iter()
            .filter(|d| s(&d.v, "kind") == kind)
            .collect();
        assert_eq!(found.len(), 1, "want exactly one {kind}");
        &found[0].v
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| s(&d.v, "kind") == kind)
            .map(|d| &d.v)
            .collect()
    }

    fn secret(&self, name: &str) -> &Value {
        &self
            .secrets
            .iter()
            .find(|d| s(&d.v, "kind") == "Secret" && s(&d.v, "metadata.name") == name)
            .unwrap_or_else(|| {
                panic!("no Secret example named {name} in deploy/kubernetes/secrets")
            })
            .v
    }

    fn pod(&self) -> &Value {
        get(self.one("Deployment"), "spec.template.spec")
    }

    fn container(&self) -> &Value {
        let cs = seq(self.pod(), "containers");
        assert_eq!(cs.len(), 1, "one container");
        &cs[0]
    }

    fn config_text(&self) -> &str {
        lit(get(self.one("ConfigMap"), "data"), "ringgate.toml")
    }

    fn config(&self) -> toml::Value {
        toml::from_str(self.config_text()).expect("the ConfigMap's ringgate.toml is TOML")
    }

    /// name -> containerPort.
    fn container_ports(&self) -> BTreeMap<String, u64> {
        seq(self.container(), "ports")
            .iter()
            .map(|p| {
                (
                    s(p, "name").to_string(),
                    get(p, "containerPort").as_u64().expect("port"),
                )
            })
            .collect()
    }

    /// A Service's or probe's `targetPort`/`port`: a name or a number, as a container port.
    fn resolve_port(&self, v: &Value) -> u64 {
        let ports = self.container_ports();
        match v {
            Value::Number(n) => {
                let n = n.as_u64().expect("port");
                assert!(ports.values().any(|&p| p == n), "no container port {n}");
                n
            }
            Value::String(name) => *ports
                .get(name)
                .unwrap_or_else(|| panic!("no container port named {name}")),
            other => panic!("not a port: {other:?}"),
        }
    }

    /// The volume behind a file path in the container: (mount, volume).
    fn volume_for(&self, file: &str) -> (&Value, &Value) {
        let mounts = seq(self.container(), "volumeMounts");
        let m = mounts
            .iter()
            .filter(|m| {
                let mp = s(m, "mountPath").trim_end_matches('/');
                file.strip_prefix(mp)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|m| s(m, "mountPath").len())
            .unwrap_or_else(|| panic!("{file} is under no volumeMount"));
        let vol = seq(self.pod(), "volumes")
            .iter()
            .find(|v| s(v, "name") == s(m, "name"))
            .unwrap_or_else(|| panic!("volumeMount {} names no volume", s(m, "name")));
        (m, vol)
    }

    /// Proves `file` exists in the container: its volume's source (ConfigMap or Secret
    /// example, through `items` where given) has a key that lands at that path.
    fn assert_provided(&self, file: &str) {
        let (m, vol) = self.volume_for(file);
        let rel = &file[s(m, "mountPath").trim_end_matches('/').len() + 1..];
        let (data, items) = if let Some(cm) = vol.get("configMap") {
            let c = self.one("ConfigMap");
            assert_eq!(s(cm, "name"), s(c, "metadata.name"), "ConfigMap name");
            (get(c, "data"), cm.get("items"))
        } else if let Some(sec) = vol.get("secret") {
            (
                get(self.secret(s(sec, "secretName")), "data"),
                sec.get("items"),
            )
        } else {
            panic!(
                "volume {} is neither a ConfigMap nor a Secret",
                s(vol, "name")
            )
        };
        let key = match items.and_then(Value::as_sequence) {
            Some(items) => s(
                items
                    .iter()
                    .find(|i| s(i, "path") == rel)
                    .unwrap_or_else(|| panic!("no item of {} lands at {rel}", s(vol, "name"))),
                "key",
            ),
            None => rel,
        };
        assert!(
            data.get(key).is_some(),
            "{file}: key {key} is not in the source of volume {}",
            s(vol, "name")
        );
    }
}

/// Every file path the configuration reads, as written.
fn config_files(cfg: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    for l in cfg["listener"].as_array().expect("listeners") {
        if let Some(tls) = l.get("tls") {
            for c in tls["certificates"].as_array().expect("certificates") {
                out.push(c["cert"].as_str().expect("cert").to_string());
                out.push(c["key"].as_str().expect("key").to_string());
            }
            for k in ["client_certificate", "trusted_certificate"] {
                if let Some(p) = tls.get(k) {
                    out.push(p.as_str().expect("path").to_string());
                }
            }
        }
    }
    out
}

fn key_files(cfg: &toml::Value) -> Vec<String> {
    cfg["listener"]
        .as_array()
        .expect("listeners")
        .iter()
        .filter_map(|l| l.get("tls"))
        .flat_map(|t| t["certificates"].as_array().expect("certificates").iter())
        .map(|c| c["key"].as_str().expect("key").to_string())
        .collect()
}

fn port_of(listen: &str) -> u64 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {listen}"))
}

fn listener<'a>(cfg: &'a toml::Value, name: &str) -> &'a toml::Value {
    cfg["listener"]
        .as_array()
        .expect("listeners")
        .iter()
        .find(|l| l["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no listener {name}"))
}

/// `"20s"`, `"500ms"`, `"2m"`, or a bare number of seconds (ringgate's units).
fn toml_duration(v: Option<&toml::Value>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(toml::Value::Integer(n)) => Duration::from_secs(*n as u64),
        Some(toml::Value::String(t)) => {
            let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
            let n: u64 = num.parse().expect("duration number");
            match unit {
                "" | "s" => Duration::from_secs(n),
                "ms" => Duration::from_millis(n),
                "m" => Duration::from_secs(60 * n),
                "h" => Duration::from_secs(3600 * n),
                other => panic!("unit {other}"),
            }
        }
        Some(other) => panic!("not a duration: {other}"),
    }
}

fn admin_port(cfg: &toml::Value) -> u64 {
    port_of(cfg["admin"]["listen"].as_str().expect("[admin] listen"))
}

#[test]
fn manifests_parse_and_carry_no_namespace() {
    let d = Deploy::load();
    let kinds: BTreeSet<&str> = d.docs.iter().map(|x| s(&x.v, "kind")).collect();
    for k in [
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains(k), "no {k} in deploy/kubernetes: {kinds:?}");
    }
    // Secrets are examples only, outside what `kubectl apply -f deploy/kubernetes/` applies,
    // so placeholders never overwrite the real ones.
    assert!(
        !kinds.contains("Secret"),
        "a Secret among the applied manifests"
    );
    for x in d.docs.iter().chain(&d.secrets) {
        assert!(!s(&x.v, "apiVersion").is_empty(), "{}", x.file);
        assert!(!s(&x.v, "metadata.name").is_empty(), "{}", x.file);
        assert!(
            get(&x.v, "metadata").get("namespace").is_none(),
            "{}: manifests are applied with -n NS and name no namespace",
            x.file
        );
    }
    for x in &d.secrets {
        assert_eq!(s(&x.v, "kind"), "Secret", "{}", x.file);
        let data = get(&x.v, "data").as_mapping().expect("data");
        for (k, v) in data {
            let text = base64_decode(v.as_str().expect("base64 text"))
                .unwrap_or_else(|| panic!("{}: {k:?} is not base64", x.file));
            assert!(text.starts_with(b"-----BEGIN "), "{}: {k:?}", x.file);
        }
    }
    let tls = d.secret("ringgate-tls");
    assert_eq!(s(tls, "type"), "kubernetes.io/tls");
    for k in ["tls.crt", "tls.key"] {
        assert!(get(tls, "data").get(k).is_some(), "ringgate-tls lacks {k}");
    }
    // The enterprise mTLS guide's section 9 secret, as `kubectl create secret generic mtls-cert
    // --from-file=client.crt --from-file=client.key --from-file=ca.crt` makes it.
    let mtls = d.secret("mtls-cert");
    let keys: BTreeSet<&str> = get(mtls, "data")
        .as_mapping()
        .expect("data")
        .keys()
        .map(|k| k.as_str().expect("key"))
        .collect();
    assert_eq!(keys, BTreeSet::from(["ca.crt", "client.crt", "client.key"]));
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let t = text.trim().trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in t.bytes() {
        let v = ABC.iter().position(|&c| c == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[test]
fn deployment_mounts_what_the_configuration_reads() {
    let d = Deploy::load();
    let c = d.container();
    let pod = d.pod();
    // Every mount names a volume, read-only, whole directories (subPath gets no updates,
    // so no `..data` swap and no reload).
    let volumes: BTreeSet<&str> = seq(pod, "volumes").iter().map(|v| s(v, "name")).collect();
    for m in seq(c, "volumeMounts") {
        assert!(
            volumes.contains(s(m, "name")),
            "mount of unknown volume {m:?}"
        );
        assert_eq!(get(m, "readOnly").as_bool(), Some(true), "{m:?}");
        assert!(
            m.get("subPath").is_none(),
            "subPath mounts never update: {m:?}"
        );
    }
    // Secret volumes: the Secrets exist (as examples) and their items' keys too.
    for v in seq(pod, "volumes") {
        if let Some(sec) = v.get("secret") {
            let example = d.secret(s(sec, "secretName"));
            if let Some(items) = sec.get("items").and_then(Value::as_sequence) {
                for i in items {
                    assert!(
                        get(example, "data").get(s(i, "key")).is_some(),
                        "Secret {} has no key {}",
                        s(sec, "secretName"),
                        s(i, "key")
                    );
                }
            }
        }
        if let Some(cm) = v.get("configMap") {
            assert_eq!(s(cm, "name"), s(d.one("ConfigMap"), "metadata.name"));
        }
    }
    // The configuration file named on the command line is the ConfigMap's key.
    let args: Vec<&str> = seq(c, "args").iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[..2], ["run", "-c"]);
    let (_, vol) = d.volume_for(args[2]);
    assert!(
        vol.get("configMap").is_some(),
        "{} is not the ConfigMap",
        args[2]
    );
    d.assert_provided(args[2]);
    // Every certificate, key and CA the configuration reads is in a mounted source.
    let cfg = d.config();
    let files = config_files(&cfg);
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        d.assert_provided(f);
    }
    // The enterprise mTLS guide's mount: Secret mtls-cert at /etc/ssl, and the client CA read from
    // it.
    let (m, v) = d.volume_for("/etc/ssl/ca.crt");
    assert_eq!(s(m, "mountPath"), "/etc/ssl");
    assert_eq!(s(v, "secret.secretName"), "mtls-cert");
    assert_eq!(
        cfg["listener"][0]["tls"]["client_certificate"].as_str(),
        Some("/etc/ssl/ca.crt")
    );
    let (_, v) = d.volume_for(
        cfg["listener"][0]["tls"]["certificates"][0]["key"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(s(v, "secret.secretName"), "ringgate-tls");
}

/// A Secret key file as the kubelet writes it (owner root) and the pod's user as it reads it.
fn pod_key(
    mode: u32,
    group: u64,
    uid: u64,
    gid: u64,
    fs_group: Option<u64>,
) -> (
    ringgate::x509::pem::KeyFileMode,
    ringgate::x509::pem::KeyReader,
) {
    let id = |n: u64| u32::try_from(n).expect("a 32-bit id");
    let file = ringgate::x509::pem::KeyFileMode {
        mode,
        owner: 0,
        group: id(group),
    };
    let mut gids = vec![id(gid)];
    gids.extend(fs_group.map(id));
    let reader = ringgate::x509::pem::KeyReader { uid: id(uid), gids };
    (file, reader)
}

/// The files the kubelet writes for a Secret volume are owned by root, with the volume's mode,
/// and with `fsGroup` group-owned by it with read for the group added (0440 at least). The
/// container's user must be able to read the keys, and ringgate's key check must accept them.
#[test]
fn secret_file_modes_are_readable_and_pass_the_key_check() {
    let d = Deploy::load();
    let pod_sc = get(d.pod(), "securityContext");
    let uid = get(pod_sc, "runAsUser").as_u64().expect("runAsUser");
    let gid = get(pod_sc, "runAsGroup").as_u64().expect("runAsGroup");
    let fs_group = pod_sc.get("fsGroup").and_then(Value::as_u64);
    assert_ne!(uid, 0);
    let cfg = d.config();
    let keys = key_files(&cfg);
    for f in config_files(&cfg) {
        let (m, vol) = d.volume_for(&f);
        let sec = get(vol, "secret");
        let rel = &f[s(m, "mountPath").len() + 1..];
        let item_mode = sec
            .get("items")
            .and_then(Value::as_sequence)
            .and_then(|items| items.iter().find(|i| s(i, "path") == rel))
            .and_then(|i| i.get("mode"));
        let mut mode = item_mode.or(sec.get("defaultMode")).map_or(0o644, k8s_mode);
        let group = match fs_group {
            Some(g) => {
                mode |= 0o440;
                g
            }
            None => 0,
        };
        assert_eq!(mode & 0o007, 0, "{f}: mode {mode:o} lets others read it");
        let readable =
            mode & 0o004 != 0 || (mode & 0o040 != 0 && (group == gid || Some(group) == fs_group));
        assert!(
            readable,
            "{f}: mode {mode:o} root:{group} is unreadable by {uid}:{gid}"
        );
        if keys.contains(&f) {
            assert!(
                ringgate::x509::pem::key_mode_allowed(mode, 0),
                "{f}: ringgate refuses a root-owned key with mode {mode:o}"
            );
            // And says nothing about it: the pod's user reads it through its group, so the
            // group bit is needed, not worth a note (nor a warning).
            let (file, reader) = pod_key(mode, group, uid, gid, fs_group);
            let path = std::path::Path::new(&f);
            assert!(
                matches!(
                    ringgate::x509::pem::judge_key(path, file, Some(&reader), false),
                    ringgate::x509::pem::KeyVerdict::Accepted
                ),
                "{f}: ringgate reports the key with mode {mode:o} root:{group}"
            );
        }
    }
}

#[test]
fn probes_service_pdb_and_policy_point_at_what_exists() {
    let d = Deploy::load();
    let cfg = d.config();
    let c = d.container();
    let ports = d.container_ports();
    let admin = admin_port(&cfg);
    // Container ports are the listeners' and the admin port.
    assert_eq!(
        ports["https"],
        port_of(listener(&cfg, "mtls")["listen"].as_str().unwrap())
    );
    assert_eq!(
        ports["http"],
        port_of(listener(&cfg, "redirect")["listen"].as_str().unwrap())
    );
    assert_eq!(ports["admin"], admin);
    // Probes: /healthz (alive) and /readyz (ready) on the admin port, over HTTP.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let p = get(c, probe);
        assert_eq!(s(p, "httpGet.path"), path);
        assert_eq!(d.resolve_port(get(p, "httpGet.port")), admin, "{probe}");
        assert!(p["httpGet"]
            .get("scheme")
            .is_none_or(|v| v.as_str() == Some("HTTP")));
    }
    // Prometheus scrapes /metrics on the admin port.
    let ann = get(d.one("Deployment"), "spec.template.metadata.annotations");
    assert_eq!(lit(ann, "prometheus.io/scrape"), "true");
    assert_eq!(lit(ann, "prometheus.io/port"), admin.to_string());
    assert_eq!(lit(ann, "prometheus.io/path"), "/metrics");
    // Selectors: the Deployment's, the Services', the PDB's and the policy's all match the
    // pod template's labels.
    let dep = d.one("Deployment");
    let pod_labels = labels(get(dep, "spec.template.metadata.labels"));
    let matches = |sel: &Value, what: &str| {
        let sel = labels(sel);
        assert!(!sel.is_empty(), "{what}: empty selector");
        for (k, v) in &sel {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{what}: {k}={v} not on the pods"
            );
        }
    };
    matches(get(dep, "spec.selector.matchLabels"), "Deployment");
    matches(
        get(d.one("PodDisruptionBudget"), "spec.selector.matchLabels"),
        "PDB",
    );
    matches(
        get(d.one("NetworkPolicy"), "spec.podSelector.matchLabels"),
        "NetworkPolicy",
    );
    // Services: 443 -> the mTLS listener, 80 -> the redirect, the admin port.
    let mut service_ports = BTreeMap::new();
    for svc in d.all("Service") {
        matches(get(svc, "spec.selector"), s(svc, "metadata.name"));
        for p in seq(svc, "spec.ports") {
            let port = get(p, "port").as_u64().unwrap();
            service_ports.insert(port, d.resolve_port(get(p, "targetPort")));
        }
    }
    assert_eq!(service_ports.get(&443), Some(&ports["https"]));
    assert_eq!(service_ports.get(&80), Some(&ports["http"]));
    assert_eq!(service_ports.get(&admin), Some(&admin));
    // The redirect sends clients to the Service's TLS port.
    assert_eq!(
        listener(&cfg, "redirect")["https_redirect"].as_integer(),
        Some(443)
    );
    // The PDB leaves a pod serving with the replicas there are.
    let replicas = get(dep, "spec.replicas").as_u64().unwrap();
    let min = get(d.one("PodDisruptionBudget"), "spec.minAvailable")
        .as_u64()
        .unwrap();
    assert!(
        min >= 1 && min < replicas,
        "minAvailable {min} of {replicas}"
    );
    // The policy's ports exist.
    for rule in seq(d.one("NetworkPolicy"), "spec.ingress") {
        for p in seq(rule, "ports") {
            d.resolve_port(get(p, "port"));
        }
    }
}

#[test]
fn pod_is_locked_down_and_sized_like_the_configuration() {
    let d = Deploy::load();
    let cfg = d.config();
    let pod = d.pod();
    let c = d.container();
    let sc = get(c, "securityContext");
    assert_eq!(get(sc, "runAsNonRoot").as_bool(), Some(true));
    assert_eq!(get(sc, "readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(get(sc, "allowPrivilegeEscalation").as_bool(), Some(false));
    let drop: Vec<&str> = seq(sc, "capabilities.drop")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(drop, ["ALL"]);
    assert!(sc.get("capabilities").unwrap().get("add").is_none());
    for ctx in [sc, get(pod, "securityContext")] {
        assert_eq!(s(ctx, "seccompProfile.type"), "RuntimeDefault");
    }
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    // The same user as the image (deploy/docker/Dockerfile: USER 10001:10001).
    assert_eq!(get(pod, "securityContext.runAsUser").as_u64(), Some(10001));
    // Listeners above 1024: no capability needed.
    for p in d.container_ports().values() {
        assert!(*p >= 1024, "port {p} needs CAP_NET_BIND_SERVICE");
    }
    // Resources; workers = the CPU limit.
    for k in [
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ] {
        get(get(c, "resources"), k);
    }
    let cpu: u64 = s(c, "resources.limits.cpu").parse().expect("whole CPUs");
    assert_eq!(cfg["runtime"]["workers"].as_integer(), Some(cpu as i64));
    // SIGTERM drains for shutdown_timeout after the preStop pause; the kubelet must wait
    // longer than both before SIGKILL.
    let shutdown = toml_duration(
        cfg["runtime"].get("shutdown_timeout"),
        Duration::from_secs(10),
    );
    let pre_stop = get(c, "lifecycle.preStop.sleep.seconds").as_u64().unwrap();
    let grace = get(pod, "terminationGracePeriodSeconds").as_u64().unwrap();
    assert!(
        grace > pre_stop + shutdown.as_secs(),
        "terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + shutdown_timeout {shutdown:?}"
    );
    // Reloads on Secret updates need the watcher on.
    assert_ne!(
        cfg["runtime"].get("watch").and_then(|w| w.as_bool()),
        Some(false)
    );
    // The access log goes to the container's stdout.
    for name in ["mtls", "redirect"] {
        assert_eq!(
            listener(&cfg, name)["access_log"]["path"].as_str(),
            Some("/dev/stdout")
        );
    }
}

/// The ConfigMap carries the enterprise mTLS guide's model of
/// tests/configs/enterprise-mtls-roles.toml unchanged.
#[test]
fn configmap_carries_the_enterprise_mtls_role_model() {
    let d = Deploy::load();
    let cfg = d.config();
    let model: toml::Value = toml::from_str(
        &std::fs::read_to_string(root().join("tests/configs/enterprise-mtls-roles.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["identity"], model["identity"]);
    let (ours, theirs) = (listener(&cfg, "mtls"), listener(&model, "mtls"));
    for k in ["server_names", "identity_headers", "location"] {
        assert_eq!(ours[k], theirs[k], "listener.{k}");
    }
    for k in ["protocols", "verify_client", "verify_depth"] {
        assert_eq!(ours["tls"][k], theirs["tls"][k], "listener.tls.{k}");
    }
    assert_eq!(ours["tls"]["verify_depth"].as_integer(), Some(2));
    // Section 10's audit line, as written for nginx.
    assert_eq!(
        cfg["log_format"]["ssl_log"].as_str(),
        Some("$remote_addr [$time_local] ClientVerify:$ssl_client_verify DN:$ssl_client_s_dn")
    );
}

/// A temporary copy of the ConfigMap's configuration for this machine: each mounted volume
/// becomes a folder laid out as the kubelet lays a Secret out (files behind the `..data`
/// symlink), filled with test certificates; the app Service is the test upstream; listeners
/// on loopback with port 0.
struct Local {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn kubelet_volume(dir: &Path, files: &[(&str, &Path)]) {
    let data = dir.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir_all(&data).unwrap();
    for (name, from) in files {
        std::fs::copy(from, data.join(name)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(data.file_name().unwrap(), dir.join("..data")).unwrap();
}

fn local_config(d: &Deploy, pki: &Pki, up: &Upstream, listen: bool) -> Local {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let ssl = dir.path().join("ssl");
    kubelet_volume(
        &tls,
        &[("tls.crt", &pki.server.cert), ("tls.key", &pki.server.key)],
    );
    kubelet_volume(&ssl, &[("ca.crt", &pki.ca.pem_path)]);
    let text = d.config_text();
    let admin = "[admin]\nlisten = \"0.0.0.0:9901\"\n";
    assert!(text.contains(admin), "the ConfigMap's [admin] table moved");
    let mut local = text
        .replace("\"/etc/ringgate/tls/", &format!("\"{}/", tls.display()))
        .replace("\"/etc/ssl/", &format!("\"{}/", ssl.display()))
        .replace("[\"app:8080\"]", &format!("[{}]", up.server()));
    if listen {
        local = local
            .replace("\"0.0.0.0:8443\"", "\"127.0.0.1:0\"")
            .replace("\"0.0.0.0:8080\"", "\"127.0.0.1:0\"")
            .replace("\"0.0.0.0:9901\"", "\"127.0.0.1:0\"");
    }
    let left: Vec<&str> = local
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("\"/etc/"))
        .collect();
    assert!(left.is_empty(), "paths left unreplaced: {left:?}");
    let path = dir.path().join("ringgate.toml");
    std::fs::write(&path, local).unwrap();
    Local { _dir: dir, path }
}

#[test]
fn configmap_configuration_passes_ringgate_check() {
    let d = Deploy::load();
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let local = local_config(&d, &pki, &up, false);
    let (code, out, err) = check(&local.path);
    assert_eq!(
        code, 0,
        "ringgate check refused the ConfigMap's configuration:\n{err}"
    );
    assert!(
        out.contains("configuration is valid (2 listeners, 1 upstream)"),
        "{out}"
    );
}

/// The ConfigMap's configuration serves the enterprise mTLS guide's model, and its access log,
/// written to `/dev/stdout`, reaches the process's standard output (what `kubectl logs` shows).
#[test]
fn configmap_configuration_serves_and_logs_to_stdout() {
    let d = Deploy::load();
    let pki = Pki::new();
    let up = Upstream::start(Mode::Echo);
    let local = local_config(&d, &pki, &up, true);
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&local.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringgate");
    let stdout_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines2 = stdout_lines.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            lines2.lock().unwrap().push(line);
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_text = Arc::new(Mutex::new(String::new()));
    let err2 = err_text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            err2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_line = |pred: &dyn Fn(&str) -> bool, what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = stdout_lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on stdout: {:?}\nstderr:\n{}",
                stdout_lines.lock().unwrap(),
                err_text.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ready = wait_line(&|l| l.starts_with("ringgate ready "), "readiness line");
    let addr_of = |name: &str| -> SocketAddr {
        let listen = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .expect("listen=");
        listen
            .split(',')
            .find_map(|e| e.strip_prefix(&format!("{name}@")))
            .unwrap_or_else(|| panic!("no {name} in {ready}"))
            .parse()
            .unwrap()
    };
    let mtls = addr_of("mtls");
    let gateway = pki.client_with(LeafSpec {
        name: "gw",
        subject: vec![
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme"),
            (DnType::OrganizationalUnitName, "Gateway"),
            (DnType::CommonName, "gw1"),
        ],
        usage: Usage::Client,
        validity: Validity::Valid,
        sans: Vec::new(),
    });
    // Gateway goes everywhere, with the identity headers set for the app.
    let r = client::get(mtls, &client_for(&pki, Some(&gateway)), "/ops/x");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = up.last();
    assert_eq!(seen.header("X-Client-Role"), Some("gateway"));
    assert_eq!(
        seen.header("X-SSL-Client-DN"),
        Some("CN=gw1,OU=Gateway,O=Acme,C=US")
    );
    // Role `none` (OU=Eng) is refused /admin; /public needs no certificate.
    let r = client::get(mtls, &client_for(&pki, Some(&pki.client)), "/admin/x");
    assert_eq!(r.status, 403, "{}", r.head);
    let r = client::get(mtls, &client_for(&pki, None), "/public/x");
    assert_eq!(r.status, 200, "{}", r.head);
    // The plain listener redirects to https on 443 (no port in the URL).
    let mut t = TcpStream::connect(addr_of("redirect")).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t.write_all(
        b"GET /api/x?y=1 HTTP/1.1\r\nHost: server.example.com\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    let _ = t.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    assert!(
        resp.contains("\r\nLocation: https://server.example.com/api/x?y=1\r\n"),
        "{resp}"
    );
    // Section 10's audit lines, on stdout.
    wait_line(
        &|l| {
            l.starts_with("127.0.0.1 [")
                && l.ends_with("] ClientVerify:SUCCESS DN:CN=gw1,OU=Gateway,O=Acme,C=US")
        },
        "access-log line for the gateway request",
    );
    wait_line(
        &|l| l.starts_with("127.0.0.1 [") && l.ends_with("] ClientVerify:NONE DN:-"),
        "access-log line for the request without a certificate",
    );
    // The probes the Deployment declares answer on the admin address.
    let admin: SocketAddr = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .expect("admin= in the readiness line")
        .parse()
        .unwrap();
    for (path, want) in [("/healthz", "HTTP/1.1 200"), ("/readyz", "HTTP/1.1 200")] {
        let mut t = TcpStream::connect(admin).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        t.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut resp = String::new();
        let _ = t.read_to_string(&mut resp);
        assert!(resp.starts_with(want), "{path}: {resp}");
    }
    // SIGTERM: a graceful exit 0.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ringgate did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", err_text.lock().unwrap());
}

/// `[Section]` and `Key=Value` lines of a unit file, in order (keys may repeat).
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continuation lines are not expected: {line}"
        );
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not Key=Value: {line}"));
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    out
}

/// A systemd time span: `30s`, `1min 30s`, `500ms`, or bare seconds.
fn systemd_span(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for tok in text.split_whitespace() {
        let (num, unit) =
            tok.split_at(tok.find(|c: char| !c.is_ascii_digit()).unwrap_or(tok.len()));
        let n: u64 = num
            .parse()
            .unwrap_or_else(|_| panic!("bad time span {text}"));
        total += match unit {
            "" | "s" | "sec" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" => Duration::from_secs(60 * n),
            other => panic!("unit {other} in {text}"),
        };
    }
    total
}

#[test]
fn systemd_unit_is_consistent_and_hardened() {
    let text = std::fs::read_to_string(root().join("deploy/systemd/ringgate.service")).unwrap();
    let entries = unit_entries(&text);
    let all = |key: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        let v = all(key);
        assert_eq!(v.len(), 1, "[Service] {key}: want one, have {v:?}");
        v[0]
    };
    // ringgate does not speak sd_notify.
    assert_eq!(one("Type"), "exec");
    let start: Vec<&str> = one("ExecStart").split_whitespace().collect();
    assert_eq!(start.len(), 4, "{start:?}");
    assert!(start[0].starts_with('/') && start[0].ends_with("/ringgate"));
    assert_eq!(start[1..3], ["run", "-c"]);
    let (bin, config) = (start[0], start[3]);
    // The same binary checks the same file before starting and before reloading.
    let check_line = format!("{bin} check -c {config}");
    assert_eq!(all("ExecStartPre"), [check_line.as_str()]);
    let reload = all("ExecReload");
    assert_eq!(reload.last(), Some(&"/bin/kill -HUP $MAINPID"));
    for r in &reload[..reload.len() - 1] {
        assert_eq!(*r, check_line);
    }
    assert_eq!(one("KillSignal"), "SIGTERM");
    // systemd must wait longer than ringgate drains. The unit's configuration is the
    // operator's; it must outwait the longest shutdown_timeout deploy/ ships (the
    // ConfigMap's) and the default.
    let cfg = Deploy::load().config();
    let shutdown = toml_duration(
        cfg["runtime"].get("shutdown_timeout"),
        Duration::from_secs(10),
    )
    .max(Duration::from_secs(10));
    let stop = systemd_span(one("TimeoutStopSec"));
    assert!(
        stop > shutdown,
        "TimeoutStopSec {stop:?} <= shutdown_timeout {shutdown:?}"
    );
    assert_eq!(one("User"), "ringgate");
    assert_eq!(one("Group"), "ringgate");
    for (key, want) in [
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("LimitNOFILE", "1048576"),
        ("ReadWritePaths", "/var/log/ringgate"),
    ] {
        assert_eq!(one(key), want, "[Service] {key}");
    }
    // @system-service plus io_uring, which older systemd leaves out of it; a refused call
    // returns EPERM (ringgate falls back to epoll) instead of killing the process.
    let filters = all("SystemCallFilter");
    assert_eq!(filters.first(), Some(&"@system-service"));
    let allowed: BTreeSet<&str> = filters
        .iter()
        .filter(|f| !f.starts_with('~'))
        .flat_map(|f| f.split_whitespace())
        .collect();
    for sc in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(allowed.contains(sc), "{sc} not allowed: {filters:?}");
    }
    // Pinning workers needs sched_setaffinity (@resources): never denied.
    for f in filters.iter().filter(|f| f.starts_with('~')) {
        assert!(
            !f.contains("@resources") && !f.contains("sched_setaffinity"),
            "{f}"
        );
    }
    assert_eq!(one("SystemCallErrorNumber"), "EPERM");
    assert!(entries
        .iter()
        .any(|(s, k, v)| s == "Install" && k == "WantedBy" && v == "multi-user.target"));
    // systemd's own reading of the unit, where this machine has systemd-analyze.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("ringgate.service");
        std::fs::write(&unit, text.replace(bin, BIN)).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("systemd-analyze is not installed: unit not verified by systemd");
    }
}

#[test]
fn logrotate_rotates_the_units_logs_and_signals_reopen() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/ringgate.service")).unwrap();
    let text = std::fs::read_to_string(root().join("deploy/logrotate/ringgate")).unwrap();
    let logs_dir = unit_entries(&unit)
        .into_iter()
        .find(|(_, k, _)| k == "ReadWritePaths")
        .map(|(_, _, v)| v)
        .unwrap();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap();
    assert_eq!(first, format!("{logs_dir}/*.log {{"));
    let directives: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(directives.contains(&"su ringgate ringgate"));
    assert!(directives.contains(&"create 0640 ringgate ringgate"));
    assert!(directives.contains(&"sharedscripts"));
    let post = text
        .split("postrotate")
        .nth(1)
        .and_then(|t| t.split("endscript").next())
        .expect("postrotate ... endscript");
    assert!(post.contains("/bin/kill -USR1"), "{post}");
    assert!(post.contains("ringgate.service"), "{post}");
}

/// The Dockerfile's instructions, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut cont = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && !cont) {
            continue;
        }
        let (body, more) = match t.strip_suffix('\\') {
            Some(b) => (b.trim(), true),
            None => (t, false),
        };
        if cont {
            let last = out.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(body);
        } else {
            let (op, rest) = body.split_once(' ').unwrap_or((body, ""));
            out.push((op.to_uppercase(), rest.trim().to_string()));
        }
        cont = more;
    }
    out
}

#[test]
fn dockerfile_builds_locked_and_runs_as_the_pods_user() {
    let ins = dockerfile();
    let from: Vec<&str> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[0].starts_with("rust:1-bookworm AS "), "{}", from[0]);
    assert!(
        from[1].starts_with("gcr.io/distroless/cc-debian12")
            || from[1].starts_with("debian:bookworm-slim"),
        "{}",
        from[1]
    );
    let run: Vec<&str> = ins
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        run.iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "{run:?}"
    );
    let last = |op: &str| -> &str {
        ins.iter()
            .rev()
            .find(|(o, _)| o == op)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {op}"))
    };
    let d = Deploy::load();
    // USER = the pod's runAsUser:runAsGroup.
    let pod_sc = get(d.pod(), "securityContext");
    assert_eq!(
        last("USER"),
        format!(
            "{}:{}",
            get(pod_sc, "runAsUser").as_u64().unwrap(),
            get(pod_sc, "runAsGroup").as_u64().unwrap()
        )
    );
    // EXPOSE = the container ports.
    let exposed: BTreeSet<u64> = last("EXPOSE")
        .split_whitespace()
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    let ports: BTreeSet<u64> = d.container_ports().into_values().collect();
    assert_eq!(exposed, ports);
    // The image's default command is the Deployment's.
    let cmd: Vec<String> = serde_json::from_str(last("CMD")).expect("CMD in exec form");
    let args: Vec<&str> = seq(d.container(), "args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cmd, args);
    let entry: Vec<String> = serde_json::from_str(last("ENTRYPOINT")).unwrap();
    let copied = last("COPY");
    assert!(
        copied.ends_with(&format!(" {}", entry[0])),
        "{copied} vs {entry:?}"
    );
    assert_eq!(last("STOPSIGNAL"), "SIGTERM");
    assert!(
        !ins.iter().any(|(op, _)| op == "HEALTHCHECK"),
        "no probe tool in the image"
    );
}

/// .dockerignore lets in exactly what `cargo build --locked` of the workspace reads: the
/// manifests, the lock file and the sources of every workspace member.
#[test]
fn dockerignore_keeps_every_workspace_member() {
    let text = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let rules: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        rules.first(),
        Some(&"*"),
        "an allow-list starts by ignoring everything"
    );
    let allowed: BTreeSet<&str> = rules
        .iter()
        .filter_map(|r| r.strip_prefix('!'))
        .map(|r| r.trim_end_matches('/'))
        .collect();
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    for need in ["Cargo.toml", "Cargo.lock", "src"] {
        assert!(allowed.contains(need), "{need} is not in the build context");
    }
    for m in manifest["workspace"]["members"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        if m == "." {
            continue;
        }
        for need in [format!("{m}/Cargo.toml"), format!("{m}/src")] {
            assert!(
                allowed.contains(need.as_str()),
                "workspace member {m}: {need} is not in the build context"
            );
        }
    }
    for path in &allowed {
        assert!(root().join(path).exists(), "{path} does not exist");
    }
}
