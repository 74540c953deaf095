//! An nginx instance in a temporary directory, proxying to the bench backends.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::cpu;

/// How long nginx gets to start listening or to stop.
const STARTUP: Duration = Duration::from_secs(10);

/// A running nginx; stopped and its directory removed on drop.
pub(crate) struct Nginx {
    pub(crate) addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Nginx {
    /// Starts nginx with `workers` worker processes in front of `backends`,
    /// on CPU 0 if `pin`.
    pub(crate) fn start(
        backends: &[SocketAddr],
        workers: &str,
        pin: bool,
    ) -> Result<Nginx, BenchError> {
        let dir = std::env::temp_dir().join(format!("weaver-proxy-bench-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let addr = free_addr()?;
        fs::write(
            dir.join("nginx.conf"),
            config(&dir, addr, backends, workers),
        )?;
        let mut command = if pin {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", "0", "nginx"]);
            taskset
        } else {
            Command::new("nginx")
        };
        let child = command
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run nginx (see scripts/install-bench-deps.sh): {e}"))?;
        let mut nginx = Nginx { addr, dir, child };
        nginx.wait_listening()?;
        Ok(nginx)
    }

    fn wait_listening(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(self.addr).is_err() {
            if let Some(status) = self.child.try_wait()? {
                let log = fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited ({status}):\n{log}").into());
            }
            if Instant::now() > deadline {
                return Err("nginx did not start listening".into());
            }
            std::thread::yield_now();
        }
        Ok(())
    }

    /// CPU time used so far by the master and its workers.
    pub(crate) fn cpu(&self) -> Duration {
        let master = self.child.id();
        cpu::children_of(master)
            .into_iter()
            .chain([master])
            .map(cpu::of_process)
            .sum()
    }

    /// nginx's version line, for the report.
    pub(crate) fn version() -> String {
        Command::new("nginx")
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_else(|e| format!("nginx: {e}"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master makes it stop its workers; killing the master
        // alone would leave them serving.
        let workers = cpu::children_of(self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STARTUP;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::yield_now();
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            for pid in workers {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn free_addr() -> Result<SocketAddr, BenchError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Upstream keep-alive for both backends and no per-connection request cap,
/// so nginx pays no reconnects that the weaver proxy does not pay either.
fn config(
    dir: &std::path::Path,
    addr: SocketAddr,
    backends: &[SocketAddr],
    workers: &str,
) -> String {
    let dir = dir.display();
    let servers: String = backends
        .iter()
        .map(|b| format!("        server {b};\n"))
        .collect();
    format!(
        "worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream backends {{
{servers}        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}
