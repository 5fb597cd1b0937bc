//! TLS to PostgreSQL: `--database-ca-file` makes every connection TLS and checks the server's
//! certificate; a server that only takes TLS connections is reached with it and refused
//! without it; a certificate of another authority, or `sslmode=require` with nothing to check
//! the server against, stops the start.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::harness::Server;
use crate::pg;

/// Runs `openssl ARGS` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority `name` in `dir`: `name.pem` (certificate) and `name.key`.
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A server certificate for 127.0.0.1 and localhost signed by authority `ca`:
/// `server.crt` and `server.key` in `dir`.
fn server_certificate(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// The uid and gid of the `postgres` OS user, when we are root (the cluster then runs as
/// that user and must own its key file); `None` otherwise (it runs as us).
fn postgres_owner() -> Option<(u32, u32)> {
    let id = |flag: &str, user: Option<&str>| {
        let output = Command::new("id")
            .arg(flag)
            .args(user)
            .output()
            .expect("run id");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u32>()
            .expect("an id")
    };
    (id("-u", None) == 0).then(|| (id("-u", Some("postgres")), id("-g", Some("postgres"))))
}

#[test]
fn a_database_that_takes_only_tls_is_reached_with_the_ca_file() {
    let cluster = pg::OwnCluster::start();
    let certs = tempfile::tempdir().expect("tempdir");
    authority(certs.path(), "ca");
    authority(certs.path(), "other-ca");
    server_certificate(certs.path(), "ca");

    // The cluster takes TLS connections only (over TCP), with a certificate of `ca`.
    let data = cluster.dir().join("data");
    for file in ["server.crt", "server.key"] {
        let to = data.join(file);
        std::fs::copy(certs.path().join(file), &to).expect("copy");
        if let Some((uid, gid)) = postgres_owner() {
            std::os::unix::fs::chown(&to, Some(uid), Some(gid)).expect("chown");
        }
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let hba = pg::psql(&cluster.url, "SHOW hba_file");
    std::fs::write(
        &hba,
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostnossl all all 127.0.0.1/32 reject\n",
    )
    .expect("write pg_hba.conf");
    pg::psql(&cluster.url, "ALTER SYSTEM SET ssl = on");
    pg::psql(&cluster.url, "SELECT pg_reload_conf()");
    // psql (libpq, sslmode=prefer) comes over TLS now.
    assert_eq!(pg::psql(&cluster.url, "SHOW ssl"), "on");
    let ca = certs.path().join("ca.pem");
    let other = certs.path().join("other-ca.pem");

    let work = tempfile::tempdir().expect("tempdir");
    let server = |name: &str, url: &str, ca_file: Option<&Path>| {
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--database",
            url,
            "--keys-dir",
            work.path().join("keys").to_str().expect("utf-8"),
            "--data-dir",
            work.path().join(name).to_str().expect("utf-8"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(file) = ca_file {
            args.extend(["--database-ca-file".into(), file.display().to_string()]);
        }
        Server::new(name.into(), args, work.path().join(format!("{name}.log")))
    };

    // Without TLS: the database refuses the connection, the server does not start.
    let plain = server("plain", &cluster.url, None);
    let refused = plain.try_launch().expect_err("started without TLS");
    assert!(refused.contains("no encryption"), "{refused}");

    // sslmode=require with nothing to check the server against: refused before connecting.
    let require = format!("{}?sslmode=require", cluster.url);
    let unchecked = server("unchecked", &require, None);
    let refused = unchecked.try_launch().expect_err("started unchecked");
    assert!(refused.contains("--database-ca-file"), "{refused}");

    // A certificate of another authority: the TLS handshake fails, the server does not start.
    let wrong = server("wrong-ca", &cluster.url, Some(&other));
    let refused = wrong
        .try_launch()
        .expect_err("started with the wrong authority");
    assert!(refused.contains("certificate"), "{refused}");

    // With the authority's certificate: TLS, checked, and the server works.
    let checked = server("checked", &cluster.url, Some(&ca));
    checked.try_launch().expect("start with TLS");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(checked.url("/v1/accounts"))
            .json(&json!({"name": "over-tls"}))
            .send()
            .await
            .expect("create an account")
            .status()
            .as_u16()
    });
    assert_eq!(status, 201);
    // Every connection of the server is encrypted (the database says so).
    let connections = pg::psql(
        &cluster.url,
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'pennypost'",
    );
    let (tls, plain) = connections.split_once('|').expect("two counts");
    assert!(tls.parse::<u32>().expect("count") >= 1, "{connections}");
    assert_eq!(plain, "0", "{connections}");
    assert_eq!(pg::psql(&cluster.url, "SELECT count(*) FROM accounts"), "1");
}
