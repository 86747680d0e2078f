//! A Postgres cluster of a test's own that takes only TLS connections: initdb in a temporary
//! directory, a certificate authority and a server certificate for `localhost` made with
//! `openssl`, `ssl = on` and a `pg_hba.conf` that rejects unencrypted TCP. Stopped and
//! removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TlsCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl TlsCluster {
    /// Starts the cluster; panics with the failing step's output.
    pub fn start() -> Self {
        let bin = postgres_bin_dir();
        let suffix: u64 = rand::random();
        let dir = std::env::temp_dir().join(format!("dtp-tls-{}-{suffix:016x}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        make_certificates(&dir);
        let port = free_port();
        let cluster = Self { dir, port, bin };
        let data = cluster.dir.join("data");
        cluster.as_postgres(
            &cluster.bin.join("initdb"),
            &["-D", path(&data), "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n\
             hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n",
        )
        .expect("write pg_hba.conf");
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=localhost -c ssl=on -c ssl_cert_file={dir}/server.crt \
             -c ssl_key_file={dir}/server.key -c fsync=off",
            dir = cluster.dir.display()
        );
        cluster.as_postgres(
            &cluster.bin.join("pg_ctl"),
            &[
                "-D",
                path(&data),
                "-l",
                path(&cluster.dir.join("postgres.log")),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        cluster
    }

    /// A URL of database `database` on this cluster, reached as `host`, with `query` appended.
    pub fn url(&self, host: &str, database: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/{database}?{query}", self.port)
    }

    /// The certificate authority that signed the server's certificate (for `sslrootcert`).
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Runs `program` as the `postgres` user when this process is root (initdb refuses root).
    fn as_postgres(&self, program: &Path, args: &[&str]) {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let output = if root {
            chown_postgres(&self.dir);
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        }
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", path(&data), "-m", "immediate", "stop"])
            .output();
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", path(&data), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The newest installed Postgres's binaries (`PG_BIN_DIR` to choose).
fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres installed under /usr/lib/postgresql (or PG_BIN_DIR set)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown the cluster's directory to postgres");
}

/// `ca.crt`/`ca.key`, and `server.crt`/`server.key` for `localhost` signed by it.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the certificate extensions");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=dtp-test-ca",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .expect("restrict the server key");
    }
}
