//! F17 `ringgate ca`: a CA directory that `openssl ca` and `ringgate ca` both drive, each
//! reading and verifying what the other writes, and whose certificates and CRLs ringgate
//! serves with.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::ca_dir_config;
use crate::support::client::{self, ClientOpts};
use crate::support::ossl::{self, ringgate, sh, try_sh};
use crate::support::pki::p;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// init, issue, revoke, crl, export-p12 and list by ringgate, interleaved with openssl ca
/// issuing, revoking and publishing on the same directory; openssl verifies everything
/// ringgate writes, ringgate loads everything openssl writes, and serves with it.
#[test]
fn ringgate_ca_and_openssl_ca_take_turns() {
    if !ossl::available("ringgate_ca_and_openssl_ca_take_turns") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = sh(
        d,
        r#"$RINGGATE ca init ca --cn MyRootCA --org MyCompany --ou CA --country CN
           $RINGGATE ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1
           $RINGGATE ca -d ca issue client --cn client1 --ou Client --org MyCompany --country CN
           $RINGGATE ca -d ca issue client --cn rsa-client --ou Admin --key-type rsa2048
           $RINGGATE ca -d ca issue client --cn ed-client --ou Ops --key-type ed25519"#,
    );
    assert!(out.contains("serial:      1000"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "a key was printed: {out}");
    // The layout of the enterprise mTLS guide's section 2, with openssl's modes.
    for sub in ["certs", "crl", "newcerts", "private"] {
        assert!(d.join("ca").join(sub).is_dir(), "{sub}");
    }
    assert_eq!(mode(&d.join("ca/private")), 0o700);
    for k in ["ca", "localhost", "client1", "rsa-client", "ed-client"] {
        assert_eq!(mode(&d.join(format!("ca/private/{k}.key"))), 0o600, "{k}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("ca/serial")).expect("serial"),
        "1004\n"
    );
    for n in ["1000", "1001", "1002", "1003"] {
        assert!(d.join(format!("ca/newcerts/{n}.pem")).exists(), "{n}");
    }

    // openssl verifies ringgate's certificates, for their purposes, and sees v3 extensions.
    let out = sh(
        d,
        r#"openssl verify -CAfile ca/ca.crt -purpose sslserver ca/certs/localhost.crt
           openssl verify -CAfile ca/ca.crt -purpose sslclient ca/certs/client1.crt ca/certs/rsa-client.crt ca/certs/ed-client.crt
           openssl x509 -in ca/certs/client1.crt -noout -text
           openssl x509 -in ca/certs/client1.crt -noout -serial -subject -nameopt RFC2253"#,
    );
    for want in [
        "ca/certs/localhost.crt: OK",
        "ca/certs/client1.crt: OK",
        "ca/certs/ed-client.crt: OK",
        "Version: 3 (0x2)",
        "TLS Web Client Authentication",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "Digital Signature",
        "CA:FALSE",
        "serial=1001",
        "subject=CN=client1,OU=Client,O=MyCompany,C=CN",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    // openssl ca continues the CA with the openssl.cnf ringgate wrote.
    sh(
        d,
        r#"openssl req -new -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
             -subj "/C=CN/O=MyCompany/OU=Admin/CN=admin1" 2>/dev/null
           openssl ca -config ca/openssl.cnf -batch -extensions client_cert -in admin.csr -out admin.crt
           openssl verify -CAfile ca/ca.crt admin.crt"#,
    );
    let (code, list, err) = ringgate(d, &["ca", "-d", "ca", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        list.contains("valid    1004") && list.contains("/C=CN/O=MyCompany/OU=Admin/CN=admin1"),
        "{list}"
    );

    // Revocations from both tools, one CRL from each: both read by both.
    sh(
        d,
        r#"$RINGGATE ca -d ca revoke --serial 1004 --reason superseded
           openssl ca -config ca/openssl.cnf -revoke ca/certs/rsa-client.crt -crl_reason keyCompromise
           openssl ca -config ca/openssl.cnf -gencrl -out openssl.crl
           $RINGGATE ca -d ca crl --days 7
           openssl crl -in openssl.crl -CAfile ca/ca.crt -noout -verify
           openssl crl -in ca/crl/ca.crl.pem -CAfile ca/ca.crt -noout -verify"#,
    );
    let text = sh(d, "openssl crl -in ca/crl/ca.crl.pem -noout -text");
    assert!(
        text.contains("Serial Number: 1004") && text.contains("Serial Number: 1002"),
        "{text}"
    );
    assert!(
        text.contains("Superseded") && text.contains("Key Compromise"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("ca/crlnumber")).expect("crlnumber"),
        "1002\n",
        "openssl's CRL took 1000, ringgate's 1001"
    );
    let (_, list, _) = ringgate(d, &["ca", "-d", "ca", "list"]);
    assert!(
        list.contains("revoked  1002") && list.contains("keyCompromise"),
        "{list}"
    );
    // openssl ocsp answers from the index both tools kept.
    let ocsp = sh(
        d,
        r#"openssl ocsp -index ca/index.txt -CA ca/ca.crt -rsigner ca/ca.crt -rkey ca/private/ca.key \
             -issuer ca/ca.crt -cert admin.crt -cert ca/certs/client1.crt -respout r.der -ndays 1 >/dev/null 2>&1
           openssl ocsp -respin r.der -noverify -resp_text"#,
    );
    assert!(
        ocsp.contains("Cert Status: revoked") && ocsp.contains("Cert Status: good"),
        "{ocsp}"
    );

    // PKCS#12 for browsers: openssl reads it with the password.
    let out = sh(
        d,
        "P12PASS=ChangeMe123 $RINGGATE ca -d ca export-p12 client1 --password-env P12PASS",
    );
    assert!(out.contains("client1.p12"), "{out}");
    assert_eq!(mode(&d.join("ca/private/client1.p12")), 0o600);
    let info = sh(
        d,
        "openssl pkcs12 -info -in ca/private/client1.p12 -passin pass:ChangeMe123 -nodes 2>&1 | grep -E 'friendlyName|subject|BEGIN'",
    );
    assert!(
        info.contains("friendlyName: client1") && info.contains("BEGIN PRIVATE KEY"),
        "{info}"
    );
    assert!(
        info.contains("CN = MyRootCA"),
        "the CA is in the file: {info}"
    );
    let (ok, _) = try_sh(
        d,
        "openssl pkcs12 -in ca/private/client1.p12 -passin pass:wrong -noout",
    );
    assert!(!ok, "a wrong password opens the file");

    // ringgate serves with what both tools made: client1 in, rsa-client (revoked by openssl)
    // and admin1 (revoked by ringgate) out, with either tool's CRL.
    let up = Upstream::start(Mode::Echo);
    for crl in ["openssl.crl", "ca/crl/ca.crl.pem"] {
        let cfg = ca_dir_config(d, &up, 1, "", &format!("crl = [{}]", p(&d.join(crl))));
        let proxy = Proxy::start(&cfg);
        let who = |cert: &str, key: &str| {
            client::config(&ClientOpts {
                ca: Some(&d.join("ca/ca.crt")),
                cert: Some((&d.join(cert), &d.join(key))),
                ..Default::default()
            })
        };
        for (cert, key) in [
            ("ca/certs/client1.crt", "ca/private/client1.key"),
            ("ca/certs/ed-client.crt", "ca/private/ed-client.key"),
        ] {
            let r = client::try_get(proxy.addr(), &who(cert, key), "/");
            assert_eq!(r.map(|r| r.status).ok(), Some(200), "{crl} {cert}");
        }
        for (cert, key) in [
            ("ca/certs/rsa-client.crt", "ca/private/rsa-client.key"),
            ("admin.crt", "admin.key"),
        ] {
            let r = client::try_get(proxy.addr(), &who(cert, key), "/");
            assert!(
                matches!(
                    r.as_ref().err().and_then(client::rustls_error),
                    Some(rustls::Error::AlertReceived(
                        rustls::AlertDescription::CertificateRevoked
                    ))
                ),
                "{crl} {cert}: {r:?}"
            );
        }
        // curl with the client certificate (the enterprise mTLS guide's way of testing).
        let (code, body, err) = crate::support::curl(&[
            "--cacert",
            &d.join("ca/ca.crt").display().to_string(),
            "--cert",
            &d.join("ca/certs/client1.crt").display().to_string(),
            "--key",
            &d.join("ca/private/client1.key").display().to_string(),
            "--resolve",
            &format!("localhost:{}:127.0.0.1", proxy.addr().port()),
            &format!("https://localhost:{}/", proxy.addr().port()),
        ]);
        assert_eq!(code, 0, "{body}{err}");
    }
}

/// `ringgate ca` on the CA that the enterprise mTLS guide's own commands made (key at ca/ca.key,
/// RSA 4096, the guide's openssl.cnf): it issues, revokes a certificate `openssl x509 -req` made
/// (adding it to index.txt as openssl ca -revoke does) and publishes a CRL openssl verifies.
#[test]
fn ringgate_ca_on_the_guide_ca() {
    if !ossl::available("ringgate_ca_on_the_guide_ca") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ossl::enterprise_mtls_pki(d);
    let out = sh(
        d,
        r#"$RINGGATE ca -d ca issue client --cn client3 --ou Client --org MyCompany --country CN
           openssl verify -CAfile ca/ca.crt ca/certs/client3.crt
           $RINGGATE ca -d ca revoke --cert client/client.crt --reason keyCompromise
           $RINGGATE ca -d ca crl
           openssl crl -in ca/crl/ca.crl.pem -CAfile ca/ca.crt -noout -verify
           openssl crl -in ca/crl/ca.crl.pem -noout -text
           openssl x509 -in client/client.crt -noout -serial
           cat ca/index.txt"#,
    );
    assert!(out.contains("ca/certs/client3.crt: OK"), "{out}");
    let serial = out
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .expect("serial");
    assert!(out.contains(&format!("Serial Number: {serial}")), "{out}");
    assert!(
        out.contains(&format!(
            "\t{serial}\tunknown\t/C=CN/O=MyCompany/OU=Client/CN=client1"
        )),
        "{out}"
    );
    // Revoking it again is an error; openssl sees the same database.
    let (code, _, err) = ringgate(
        d,
        &["ca", "-d", "ca", "revoke", "--cert", "client/client.crt"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("already revoked"), "{err}");
    let again = try_sh(
        d,
        "openssl ca -config ca/openssl.cnf -keyfile ca/ca.key -revoke client/client.crt",
    );
    assert!(again.1.contains("Already revoked"), "{}", again.1);
    // init refuses to overwrite a CA.
    let (code, _, err) = ringgate(d, &["ca", "init", "ca"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
}
