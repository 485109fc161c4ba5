//! A real SMTP server on 127.0.0.1 for the email tests: PyPI's aiosmtpd writing a maildir
//! (started by `make test`'s set-up), or one that refuses every message.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running SMTP server, stopped on drop.
pub struct SmtpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    /// Start one that keeps every message in `dir`/maildir.
    pub fn start(dir: &Path) -> SmtpServer {
        Self::spawn(dir, &["-c", "aiosmtpd.handlers.Mailbox"], true)
    }

    /// Start one that answers, and refuses every message (554).
    pub fn refusing(dir: &Path) -> SmtpServer {
        let script = dir.join("refuse.py");
        std::fs::write(
            &script,
            "class Refuse:\n    async def handle_DATA(self, server, session, envelope):\n        return '554 5.7.1 Message refused'\n",
        )
        .unwrap();
        Self::spawn(dir, &["-c", "refuse.Refuse"], false)
    }

    fn spawn(dir: &Path, handler: &[&str], maildir_arg: bool) -> SmtpServer {
        std::fs::create_dir_all(dir).unwrap();
        // A free port: the system picks one, the server takes it over. Another server (of a
        // test running beside this one) may take it first: then ours exits, and another port
        // is tried, so a test never talks to someone else's server.
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let maildir = dir.join("maildir");
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(handler)
                .current_dir(dir)
                .env("PYTHONPATH", dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if maildir_arg {
                cmd.arg(maildir.to_str().unwrap());
            }
            let mut child = cmd
                .spawn()
                .expect("python3 is missing (make test installs it)");
            let start = Instant::now();
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // it could not listen there: try another port
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Ours, if it is still running a moment after the port answers (a
                    // server that lost the port exits within that moment).
                    std::thread::sleep(Duration::from_millis(500));
                    if child.try_wait().unwrap().is_none() {
                        return SmtpServer {
                            child,
                            port,
                            maildir,
                        };
                    }
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "the SMTP server did not start: install it with `python3 -m pip install aiosmtpd` (make test does)"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the SMTP server could not listen on a free port of 127.0.0.1 (tried 10)");
    }

    /// The messages received, whole.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in rd {
                    out.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
