//! Real storage servers on loopback for the offsite tests: an S3 server (`s3s-fs`, from the Rust
//! registry: it checks signatures and checksums and keeps objects as files) and a WebDAV server
//! (Debian's `rclone serve webdav`). Each runs on a free port with its own folder, can be
//! stopped and started again on the same port and folder, and is killed when dropped.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn find(tool: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = Path::new(&home).join(".cargo/bin").join(tool);
        p.is_file().then_some(p)
    })
}

/// A server process on a port of its own.
pub struct Server {
    program: PathBuf,
    args: Vec<String>,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn new(tool: &str, how: &str, args: Vec<String>, port: u16, log: PathBuf) -> Server {
        let program = find(tool).unwrap_or_else(|| {
            panic!(
                "{tool} is not installed, and the offsite tests need it: {how} (`make test` does)"
            )
        });
        let mut s = Server {
            program,
            args,
            port,
            child: None,
            log,
        };
        s.start();
        s
    }

    /// Start it (again) and wait until it answers.
    pub fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("server log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start on port {}: {}",
                self.program.display(),
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop it (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An S3 server with one bucket, `school`, and the credentials it accepts.
pub struct S3 {
    pub server: Server,
    pub root: tempfile::TempDir,
    pub access_key: String,
    pub secret_key: String,
}

impl S3 {
    pub fn start() -> S3 {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("school")).expect("bucket");
        let port = free_port();
        let access_key = "schoolvault-test".to_string();
        let secret_key = hex::encode(rand::random::<[u8; 16]>());
        let args = vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--access-key".into(),
            access_key.clone(),
            "--secret-key".into(),
            secret_key.clone(),
            root.path().display().to_string(),
        ];
        let log = root.path().join("server.log");
        let server = Server::new(
            "s3s-fs",
            "cargo install s3s-fs --version 0.14.1 --features binary --locked",
            args,
            port,
            log,
        );
        S3 {
            server,
            root,
            access_key,
            secret_key,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The destination URL of `bucket/prefix` on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint()
        )
    }

    /// Where the server keeps object `key` of `bucket`.
    pub fn object(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }
}

/// A WebDAV server (user `teacher`, a random password) serving a folder of its own.
pub struct WebDav {
    pub server: Server,
    pub root: tempfile::TempDir,
    pub user: String,
    pub password: String,
}

impl WebDav {
    pub fn start() -> WebDav {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("data");
        let port = free_port();
        let user = "teacher".to_string();
        let password = hex::encode(rand::random::<[u8; 12]>());
        let args = vec![
            "serve".into(),
            "webdav".into(),
            data.display().to_string(),
            "--addr".into(),
            format!("127.0.0.1:{port}"),
            "--user".into(),
            user.clone(),
            "--pass".into(),
            password.clone(),
            "--config".into(),
            "/dev/null".into(),
        ];
        let log = root.path().join("server.log");
        let server = Server::new("rclone", "apt-get install rclone", args, port, log);
        WebDav {
            server,
            root,
            user,
            password,
        }
    }

    /// Where the server keeps `path`.
    pub fn file(&self, path: &str) -> PathBuf {
        self.root.path().join("data").join(path)
    }
}

/// moto's S3 server (PyPI's `moto[server]`): unlike s3s-fs it has Object Lock (versioned
/// buckets, retention, refused deletes of locked versions), so the lock tests use it. It checks
/// no signatures; the locks are read back through boto3, independently of SchoolVault.
pub struct Moto {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let ready = Command::new("python3")
            .args(["-c", "import moto.server, boto3"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ready,
            "moto's S3 server is not installed, and the Object Lock test needs it: python3 -m pip install 'moto[server]' (`make test` does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let args = vec![
            "-m".into(),
            "moto.server".into(),
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        let log = dir.path().join("server.log");
        let server = Server::new("python3", "install python3", args, port, log);
        Moto { server, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Run `script` with `s3`, a boto3 client of this server, in scope; its standard output.
    pub fn boto3(&self, script: &str) -> String {
        let program = format!(
            "import boto3, json\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{script}",
            self.endpoint()
        );
        let out = Command::new("python3")
            .args(["-c", &program])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "boto3 script failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
