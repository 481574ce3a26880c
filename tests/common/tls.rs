//! TLS material for the tests, made with the `openssl` command in a temp
//! dir: a CA, a broker certificate for 127.0.0.1 signed by it, and a second
//! CA that signed nothing (what a client with the wrong `ssl.ca.location`
//! trusts). Fails the test, saying what is missing, when there is no
//! `openssl`: never a skipped test.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The files [`make`] writes.
pub struct Tls {
    /// Holds every file; removed when dropped.
    pub dir: TempDir,
    /// The CA that signed the broker's certificate (PEM).
    pub ca: PathBuf,
    /// A CA that signed nothing the broker has (PEM).
    pub other_ca: PathBuf,
    /// `broker.pem`: the broker's unencrypted PKCS#8 key, its certificate and
    /// the CA's, as `scripts/broker.sh --tls-dir` wants them.
    pub broker_pem: PathBuf,
}

/// Runs `openssl args` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|err| {
        panic!("could not run `openssl` ({err}); the TLS tests need the openssl command (apt-get install openssl)")
    });
    assert!(
        output.status.success(),
        "openssl {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed CA named `name`: `NAME.key` and `NAME.pem` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (key, pem, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=kuniq test {name}"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "2", "-subj",
            &subject,
        ],
    );
}

/// Makes a CA, a broker certificate for 127.0.0.1 (and localhost) signed by
/// it, and an unrelated CA, in a new temp dir.
pub fn make() -> Tls {
    let dir = tempfile::Builder::new().prefix("kuniq-tls-").tempdir().expect("a temp dir for TLS files");
    let path = dir.path();
    make_ca(path, "ca");
    make_ca(path, "other-ca");
    // The broker's key: `req -newkey` writes unencrypted PKCS#8 ("BEGIN
    // PRIVATE KEY") with -nodes on OpenSSL 3, which Kafka's PEM keystore
    // reads; checked below rather than assumed.
    openssl(
        path,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        path.join("broker.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        path,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "broker.crt",
            "-days",
            "2",
            "-extfile",
            "broker.ext",
        ],
    );
    let key = std::fs::read_to_string(path.join("broker.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "openssl did not write an unencrypted PKCS#8 key");
    let chain = [key, std::fs::read_to_string(path.join("broker.crt")).unwrap()]
        .into_iter()
        .chain([std::fs::read_to_string(path.join("ca.pem")).unwrap()])
        .collect::<String>();
    let broker_pem = path.join("broker.pem");
    std::fs::write(&broker_pem, chain).unwrap();
    Tls { ca: path.join("ca.pem"), other_ca: path.join("other-ca.pem"), broker_pem, dir }
}
