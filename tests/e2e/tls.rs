//! HTTPS listeners with real TLS clients (curl, `openssl s_client`): certificates chosen by
//! SNI, security policies restricting versions and suites, mutual TLS (`verify` and
//! `passthrough`) with ALB's `X-Amzn-Mtls-Clientcert*` headers as a recording backend sees
//! them, `hostalb check` refusing files that cannot load, and reloads re-reading
//! certificate files. Certificates are made with rcgen when each test runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hostalb_testkit::{Backend, HostAlb, eventually, run_check};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber, date_time_ymd,
};

use crate::common::{bin, start};

/// Bound on one client command (curl's `--max-time`, `timeout` around s_client).
const CLIENT_SECONDS: u32 = 10;

/// A certificate authority that signs certificates into a temp directory.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Example Corp");
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

/// Files of one test.
struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate written to disk: its PEM and the two paths.
struct Issued {
    pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::Builder::new().prefix("hostalb-tls-").tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A CA's certificate as a PEM file.
    fn ca_file(&self, name: &str, ca: &Ca) -> PathBuf {
        self.write(name, &ca.pem)
    }

    /// A server certificate for `names`, signed by `ca`.
    fn server(&self, file: &str, ca: &Ca, names: &[&str]) -> Issued {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        let pem = params.signed_by(&key, &ca.issuer()).unwrap().pem();
        Issued {
            cert: self.write(&format!("{file}.pem"), &pem),
            key: self.write(&format!("{file}.key"), &key.serialize_pem()),
            pem,
        }
    }

    /// A client certificate `CN=<cn>,O=Example Corp` with this serial and validity, signed
    /// by `ca`. The certificate file holds `chain_extra` after the leaf.
    fn client(
        &self,
        file: &str,
        ca: &Ca,
        cn: &str,
        serial: &[u8],
        years: (i32, i32),
        chain_extra: &str,
    ) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Example Corp");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.not_before = date_time_ymd(years.0, 1, 1);
        params.not_after = date_time_ymd(years.1, 1, 1);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let pem = params.signed_by(&key, &ca.issuer()).unwrap().pem();
        Issued {
            cert: self.write(&format!("{file}.pem"), &format!("{pem}{chain_extra}")),
            key: self.write(&format!("{file}.key"), &key.serialize_pem()),
            pem,
        }
    }
}

/// PEM URL-encoded as ALB sends it (`+=/` kept, space `%20`, newline `%0A`).
fn url_encoded_pem(pem: &str) -> String {
    let mut text = pem.replace('\r', "");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.replace(' ', "%20").replace('\n', "%0A")
}

/// The outcome of one client run.
#[derive(Debug)]
struct Ran {
    ok: bool,
    out: String,
}

async fn run(program: &str, args: Vec<String>) -> Ran {
    let program = program.to_owned();
    let label = format!("{program} {}", args.join(" "));
    tokio::task::spawn_blocking(move || {
        let out = Command::new("timeout")
            .arg(CLIENT_SECONDS.to_string())
            .arg(&program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} (install it: apt-get install curl openssl): {e}")
            });
        Ran {
            ok: out.status.success(),
            out: format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{label}: {e}"))
}

/// `curl https://<host>:<port><path>` resolved to hostalb, trusting `ca`, with `extra` args.
async fn curl(alb: &HostAlb, listener: &str, host: &str, path: &str, ca: &Path, extra: &[&str]) -> Ran {
    let port = alb.listener(listener).port();
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "-i".into(),
        "--max-time".into(),
        CLIENT_SECONDS.to_string(),
        "--cacert".into(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("{host}:{port}:127.0.0.1"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("https://{host}:{port}{path}"));
    run("curl", args).await
}

/// `openssl s_client` to the listener with `args` (SNI, versions, ciphers).
async fn s_client(alb: &HostAlb, listener: &str, args: &[&str]) -> Ran {
    let port = alb.listener(listener).port();
    let mut all: Vec<String> = vec!["s_client".into(), "-connect".into(), format!("127.0.0.1:{port}")];
    all.extend(args.iter().map(|s| s.to_string()));
    run("openssl", all).await
}

/// Whether s_client completed a handshake.
fn handshake_done(r: &Ran) -> bool {
    r.out.contains("Cipher is ") && !r.out.contains("Cipher is (NONE)")
}

/// The server certificate s_client printed (PEM).
fn served_pem(r: &Ran) -> Option<String> {
    let start = r.out.find("-----BEGIN CERTIFICATE-----")?;
    let end = r.out[start..].find("-----END CERTIFICATE-----")? + start + "-----END CERTIFICATE-----".len();
    Some(r.out[start..end].to_owned())
}

fn same_pem(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace('\r', "").trim().to_owned();
    norm(a) == norm(b)
}

/// An HTTPS listener `secure` forwarding to `backend`, with `keys` (TOML lines).
fn https_config(backend: &Backend, certs: &[&Issued], keys: &str) -> String {
    let certs: Vec<String> = certs
        .iter()
        .map(|c| {
            format!(
                "{{ cert_file = \"{}\", key_file = \"{}\" }}",
                c.cert.display(),
                c.key.display()
            )
        })
        .collect();
    format!(
        r#"
[[listener]]
name = "secure"
address = "127.0.0.1:0"
protocol = "HTTPS"
certificates = [{}]
{keys}
default_action = {{ type = "forward", target_group = "app" }}

[target_group.app]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        certs.join(", "),
        backend.addr()
    )
}

fn answered_by(r: &Ran, backend: &Backend) -> bool {
    // curl offers h2 first: an HTTPS listener answers over HTTP/2 unless `http2 = false`.
    r.ok && (r.out.contains("HTTP/1.1 200") || r.out.contains("HTTP/2 200"))
        && r.out
            .to_ascii_lowercase()
            .contains(&format!("x-backend: {}", backend.name()))
}

#[tokio::test]
async fn https_request_and_sni_picks_the_certificate() {
    let pki = Pki::new();
    let ca = Ca::new("Server CA");
    let ca_file = pki.ca_file("server-ca.pem", &ca);
    let a = pki.server("a", &ca, &["a.example"]);
    let b = pki.server("b", &ca, &["b.example", "*.b.example"]);
    let backend = Backend::start("tls-app").await;
    let alb = start(&https_config(&backend, &[&a, &b], "")).await;

    let r = curl(&alb, "secure", "a.example", "/hello", &ca_file, &[]).await;
    assert!(answered_by(&r, &backend), "{r:?}");
    let r = curl(&alb, "secure", "api.b.example", "/hello", &ca_file, &[]).await;
    assert!(
        answered_by(&r, &backend),
        "the wildcard certificate verifies: {r:?}"
    );
    let seen = backend.requests().pop().expect("a request reached the backend");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(alb.listener("secure").port().to_string().as_str())
    );

    for (sni, want) in [
        ("a.example", &a),
        ("b.example", &b),
        ("x.b.example", &b),
        ("other.example", &a),
    ] {
        let r = s_client(&alb, "secure", &["-servername", sni]).await;
        let got = served_pem(&r).unwrap_or_else(|| panic!("no certificate for {sni}: {r:?}"));
        assert!(same_pem(&got, &want.pem), "SNI {sni} got the wrong certificate");
    }
    let r = s_client(&alb, "secure", &["-noservername"]).await;
    assert!(
        served_pem(&r).is_some_and(|p| same_pem(&p, &a.pem)),
        "without SNI the first certificate is the default: {r:?}"
    );
}

#[tokio::test]
async fn security_policies_restrict_versions_and_suites() {
    let pki = Pki::new();
    let ca = Ca::new("Server CA");
    let ca_file = pki.ca_file("server-ca.pem", &ca);
    let cert = pki.server("s", &ca, &["s.example"]);
    let backend = Backend::start("policy-app").await;

    // TLS 1.3 only.
    let alb = start(&https_config(
        &backend,
        &[&cert],
        "ssl_policy = \"ELBSecurityPolicy-TLS13-1-3-2021-06\"",
    ))
    .await;
    let r = curl(&alb, "secure", "s.example", "/", &ca_file, &["--tls-max", "1.2"]).await;
    assert!(!r.ok, "TLS 1.2 must be refused by a TLS13-1-3 policy: {r:?}");
    let r = curl(&alb, "secure", "s.example", "/", &ca_file, &["--tlsv1.3"]).await;
    assert!(answered_by(&r, &backend), "{r:?}");
    let r = s_client(&alb, "secure", &["-servername", "s.example", "-tls1_2"]).await;
    assert!(!handshake_done(&r), "{r:?}");
    let r = s_client(&alb, "secure", &["-servername", "s.example", "-tls1_3"]).await;
    assert!(handshake_done(&r) && r.out.contains("TLSv1.3"), "{r:?}");
    drop(alb);

    // TLS 1.2 only, forward-secret AEAD suites only.
    let alb = start(&https_config(
        &backend,
        &[&cert],
        "ssl_policy = \"ELBSecurityPolicy-FS-1-2-Res-2020-10\"",
    ))
    .await;
    let r = s_client(&alb, "secure", &["-servername", "s.example", "-tls1_3"]).await;
    assert!(
        !handshake_done(&r),
        "TLS 1.3 must be refused by a TLS 1.2 policy: {r:?}"
    );
    let r = s_client(&alb, "secure", &["-servername", "s.example", "-tls1_2"]).await;
    assert!(
        handshake_done(&r) && r.out.contains("ECDHE-ECDSA-AES128-GCM-SHA256"),
        "server preference picks the policy's first suite: {r:?}"
    );
    let r = s_client(
        &alb,
        "secure",
        &[
            "-servername",
            "s.example",
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA",
        ],
    )
    .await;
    assert!(!handshake_done(&r), "CBC suites are not served: {r:?}");
    drop(alb);

    // A FIPS policy has no ChaCha20.
    let alb = start(&https_config(
        &backend,
        &[&cert],
        "ssl_policy = \"ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04\"",
    ))
    .await;
    let chacha = [
        "-servername",
        "s.example",
        "-tls1_3",
        "-ciphersuites",
        "TLS_CHACHA20_POLY1305_SHA256",
    ];
    let r = s_client(&alb, "secure", &chacha).await;
    assert!(!handshake_done(&r), "{r:?}");
    let r = s_client(
        &alb,
        "secure",
        &[
            "-servername",
            "s.example",
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384",
        ],
    )
    .await;
    assert!(
        handshake_done(&r) && r.out.contains("TLS_AES_256_GCM_SHA384"),
        "{r:?}"
    );
    drop(alb);

    // The default policy (TLS13-1-2-2021-06) takes both versions, and ChaCha20.
    let alb = start(&https_config(&backend, &[&cert], "")).await;
    for version in ["-tls1_2", "-tls1_3"] {
        let r = s_client(&alb, "secure", &["-servername", "s.example", version]).await;
        assert!(handshake_done(&r), "{version}: {r:?}");
    }
    let r = s_client(&alb, "secure", &chacha).await;
    assert!(handshake_done(&r), "{r:?}");
}

/// The mTLS fields the backend saw on its last request.
fn mtls_headers(backend: &Backend) -> Vec<(String, String)> {
    let req = backend.requests().pop().expect("a request reached the backend");
    req.headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-amzn-mtls"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

#[tokio::test]
async fn mtls_verify_refuses_bad_clients_and_tells_targets_who_connected() {
    let pki = Pki::new();
    let server_ca = Ca::new("Server CA");
    let ca_file = pki.ca_file("server-ca.pem", &server_ca);
    let cert = pki.server("s", &server_ca, &["s.example"]);
    let client_ca = Ca::new("Client CA");
    let store = pki.ca_file("client-ca.pem", &client_ca);
    let other_ca = Ca::new("Other CA");
    let good = pki.client(
        "alice",
        &client_ca,
        "alice",
        &[0x9A, 0x01, 0xAB],
        (2024, 2040),
        "",
    );
    let stranger = pki.client("mallory", &other_ca, "mallory", &[0x07], (2024, 2040), "");
    let expired = pki.client("old", &client_ca, "old", &[0x08], (2020, 2021), "");
    let backend = Backend::start("mtls-app").await;
    let keys = format!(
        "mutual_authentication = {{ mode = \"verify\", trust_store = \"{}\" }}",
        store.display()
    );
    // Debug logging on: each refusal is logged as ALB's connection log says it.
    let alb = HostAlb::builder(bin())
        .config(format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n{}",
            https_config(&backend, &[&cert], &keys)
        ))
        .env("RUST_LOG", "info,hostalb_proxy::data::tls=debug")
        .start()
        .await;
    let with = |c: &Issued| vec![c.cert.display().to_string(), c.key.display().to_string()];

    let g = with(&good);
    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/who",
        &ca_file,
        &[
            "--cert",
            &g[0],
            "--key",
            &g[1],
            "-H",
            "X-Amzn-Mtls-Clientcert-Subject: CN=forged",
            "-H",
            "X-Amzn-Mtls-Clientcert: forged",
        ],
    )
    .await;
    assert!(answered_by(&r, &backend), "{r:?}");
    let got = mtls_headers(&backend);
    let want: Vec<(String, String)> = [
        ("X-Amzn-Mtls-Clientcert-Serial-Number", "9A01AB".to_owned()),
        (
            "X-Amzn-Mtls-Clientcert-Issuer",
            "CN=Client CA,O=Example Corp".to_owned(),
        ),
        (
            "X-Amzn-Mtls-Clientcert-Subject",
            "CN=alice,O=Example Corp".to_owned(),
        ),
        (
            "X-Amzn-Mtls-Clientcert-Validity",
            "NotBefore=2024-01-01T00:00:00Z;NotAfter=2040-01-01T00:00:00Z".to_owned(),
        ),
        ("X-Amzn-Mtls-Clientcert-Leaf", url_encoded_pem(&good.pem)),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    assert_eq!(got, want, "exactly ALB's fields, the client's copies removed");

    let before = backend.request_count();
    let r = curl(&alb, "secure", "s.example", "/", &ca_file, &[]).await;
    assert!(!r.ok, "no client certificate: refused: {r:?}");
    let s = with(&stranger);
    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/",
        &ca_file,
        &["--cert", &s[0], "--key", &s[1]],
    )
    .await;
    assert!(!r.ok, "a certificate of another CA: refused: {r:?}");
    let e = with(&expired);
    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/",
        &ca_file,
        &["--cert", &e[0], "--key", &e[1]],
    )
    .await;
    assert!(!r.ok, "an expired certificate: refused: {r:?}");
    assert_eq!(
        backend.request_count(),
        before,
        "no refused client reached the target"
    );
    assert!(
        alb.wait_stderr("tls_verify_status=Failed:", Duration::from_secs(5))
            .await,
        "refusals are logged:\n{}",
        alb.stderr_text()
    );
    let refused = crate::admin::metric(&alb, "hostalb_client_tls_negotiation_errors_total").await;
    assert!(
        refused >= 3.0,
        "each refusal is a TLS negotiation error: {refused}"
    );

    // The same listener ignoring expiry takes the expired certificate, not the stranger.
    let keys = format!(
        "mutual_authentication = {{ mode = \"verify\", trust_store = \"{}\", ignore_client_certificate_expiry = true }}",
        store.display()
    );
    let alb = start(&https_config(&backend, &[&cert], &keys)).await;
    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/",
        &ca_file,
        &["--cert", &e[0], "--key", &e[1]],
    )
    .await;
    assert!(answered_by(&r, &backend), "expiry ignored: {r:?}");
    let got = mtls_headers(&backend);
    assert!(
        got.contains(&(
            "X-Amzn-Mtls-Clientcert-Validity".to_owned(),
            "NotBefore=2020-01-01T00:00:00Z;NotAfter=2021-01-01T00:00:00Z".to_owned()
        )),
        "{got:?}"
    );
    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/",
        &ca_file,
        &["--cert", &s[0], "--key", &s[1]],
    )
    .await;
    assert!(!r.ok, "ignoring expiry does not trust other CAs: {r:?}");
}

#[tokio::test]
async fn mtls_passthrough_sends_the_whole_chain_unverified() {
    let pki = Pki::new();
    let server_ca = Ca::new("Server CA");
    let ca_file = pki.ca_file("server-ca.pem", &server_ca);
    let cert = pki.server("s", &server_ca, &["s.example"]);
    let nobody_trusts = Ca::new("Unknown CA");
    let client = pki.client(
        "bob",
        &nobody_trusts,
        "bob",
        &[0x42],
        (2020, 2021),
        &nobody_trusts.pem,
    );
    let backend = Backend::start("pass-app").await;
    let alb = start(&https_config(
        &backend,
        &[&cert],
        "mutual_authentication = { mode = \"passthrough\" }",
    ))
    .await;
    let (c, k) = (
        client.cert.display().to_string(),
        client.key.display().to_string(),
    );
    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/",
        &ca_file,
        &[
            "--cert",
            &c,
            "--key",
            &k,
            "-H",
            "X-Amzn-Mtls-Clientcert-Leaf: forged",
        ],
    )
    .await;
    assert!(
        answered_by(&r, &backend),
        "an unknown, expired certificate passes through: {r:?}"
    );
    let chain = format!(
        "{}{}",
        url_encoded_pem(&client.pem),
        url_encoded_pem(&nobody_trusts.pem)
    );
    assert_eq!(
        mtls_headers(&backend),
        vec![("X-Amzn-Mtls-Clientcert".to_owned(), chain)],
        "the chain as sent, leaf first; the client's field removed"
    );

    let r = curl(
        &alb,
        "secure",
        "s.example",
        "/",
        &ca_file,
        &["-H", "X-Amzn-Mtls-Clientcert: forged"],
    )
    .await;
    assert!(
        answered_by(&r, &backend),
        "a client without a certificate is let through: {r:?}"
    );
    assert!(mtls_headers(&backend).is_empty(), "and its forged field removed");
}

#[tokio::test]
async fn check_refuses_certificate_key_and_trust_store_files_that_cannot_load() {
    let pki = Pki::new();
    let ca = Ca::new("Server CA");
    let a = pki.server("a", &ca, &["a.example"]);
    let b = pki.server("b", &ca, &["b.example"]);
    let garbage = pki.write("garbage.pem", "not a certificate\n");
    let store = pki.ca_file("client-ca.pem", &Ca::new("Client CA"));
    let config = |cert: &Path, key: &Path, keys: &str| {
        format!(
            r#"
[[listener]]
name = "secure"
address = "127.0.0.1:8443"
protocol = "HTTPS"
certificates = [{{ cert_file = "{}", key_file = "{}" }}]
{keys}
"#,
            cert.display(),
            key.display()
        )
    };
    let (code, out, _) = run_check(bin(), &config(&a.cert, &a.key, ""), "toml");
    assert_eq!(code, 0, "{out}");
    let verify = |store: &Path| {
        format!(
            "mutual_authentication = {{ mode = \"verify\", trust_store = \"{}\" }}",
            store.display()
        )
    };
    let (code, out, _) = run_check(bin(), &config(&a.cert, &a.key, &verify(&store)), "toml");
    assert_eq!(code, 0, "{out}");

    let missing = pki.path("missing.pem");
    let cases: Vec<(String, &str, String)> = vec![
        (
            config(&missing, &a.key, ""),
            "listener[0].certificates[0].cert_file",
            missing.display().to_string(),
        ),
        (
            config(&garbage, &a.key, ""),
            "listener[0].certificates[0].cert_file",
            "no CERTIFICATE block".to_owned(),
        ),
        (
            config(&a.cert, &garbage, ""),
            "listener[0].certificates[0].key_file",
            garbage.display().to_string(),
        ),
        (
            config(&a.cert, &b.key, ""),
            "listener[0].certificates[0].key_file",
            "does not belong to the certificate".to_owned(),
        ),
        (
            config(&a.cert, &a.key, &verify(&missing)),
            "listener[0].mutual_authentication.trust_store",
            missing.display().to_string(),
        ),
        (
            config(&a.cert, &a.key, &verify(&garbage)),
            "listener[0].mutual_authentication.trust_store",
            "no CERTIFICATE block".to_owned(),
        ),
    ];
    for (text, field, fragment) in cases {
        let (code, out, _) = run_check(bin(), &text, "toml");
        assert_eq!(code, 1, "{field} / {fragment}: {out}");
        let line = out
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("no problem names {field}:\n{out}"));
        assert!(line.contains(&fragment), "{line}");
        assert!(out.contains("fix: "), "a fix is given:\n{out}");
    }
}

#[tokio::test]
async fn reload_rereads_certificate_files_and_keeps_serving_when_they_break() {
    let pki = Pki::new();
    let ca = Ca::new("Server CA");
    let first = pki.server("live", &ca, &["s.example"]);
    let backend = Backend::start("reload-app").await;
    let alb = start(&https_config(&backend, &[&first], "")).await;
    let served = async || served_pem(&s_client(&alb, "secure", &["-servername", "s.example"]).await);
    assert!(served().await.is_some_and(|p| same_pem(&p, &first.pem)));

    // A new certificate and key at the same paths; the configuration is unchanged.
    let second = pki.server("next", &ca, &["s.example"]);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    let (status, body) = alb.reload_api().await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(5), async || {
        served().await.is_some_and(|p| same_pem(&p, &second.pem))
    })
    .await;

    // A broken certificate file: the reload fails, is logged, and the running one serves.
    std::fs::write(&first.cert, "broken\n").unwrap();
    let (status, body) = alb.reload_api().await;
    assert_ne!(status, 200, "{body}");
    assert!(
        alb.wait_stderr("no CERTIFICATE block", Duration::from_secs(5))
            .await,
        "the error is logged:\n{}",
        alb.stderr_text()
    );
    assert!(served().await.is_some_and(|p| same_pem(&p, &second.pem)));
    assert!(alb.reload_sighup());
    assert!(served().await.is_some_and(|p| same_pem(&p, &second.pem)));
}
