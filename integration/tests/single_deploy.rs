//! `weaver single deploy weaver.toml`: the app runs as one process under
//! `weaver`, with the config's `[single]` section, its own stdio, signals
//! passed on, and `weaver` exiting with the app's status.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use weaver_integration::{
    DEADLINE, TempDir, bins, children_of, config, http_get, status_in, wait_gone,
};

/// A `weaver single deploy` run, its output collected line by line.
struct Run {
    child: Child,
    pid: u32,
    stdout: watch::Receiver<Vec<String>>,
    stderr: watch::Receiver<Vec<String>>,
    _config_dir: TempDir,
}

impl Run {
    /// Writes `config` to a fresh directory and runs `weaver single deploy`
    /// on it with data directory `data`.
    fn start(config: &str, data: &Path) -> anyhow::Result<Run> {
        let dir = TempDir::new("weaver-single-config")?;
        let path = dir.path().join("weaver.toml");
        std::fs::write(&path, config)?;
        let mut child = Command::new(&bins().weaver)
            .args(["single", "deploy"])
            .arg(&path)
            .env("WEAVER_DATA_DIR", data)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn weaver single deploy")?;
        let pid = child.id().context("weaver's pid")?;
        let stdout = lines(child.stdout.take().context("stdout")?);
        let stderr = lines(child.stderr.take().context("stderr")?);
        Ok(Run {
            child,
            pid,
            stdout,
            stderr,
            _config_dir: dir,
        })
    }

    /// Waits until a line of `stream` contains `needle`, and returns it.
    async fn line(
        &self,
        stream: &watch::Receiver<Vec<String>>,
        needle: &str,
    ) -> anyhow::Result<String> {
        let mut rx = stream.clone();
        let found = tokio::time::timeout(
            DEADLINE,
            rx.wait_for(|lines| lines.iter().any(|l| l.contains(needle))),
        )
        .await;
        let all = stream.borrow().clone();
        match found {
            Ok(Ok(_)) => Ok(all
                .into_iter()
                .find(|l| l.contains(needle))
                .expect("wait_for saw the line")),
            _ => bail!(
                "no line with {needle:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout.borrow().join("\n"),
                self.stderr.borrow().join("\n")
            ),
        }
    }

    /// The app's pid: `weaver`'s one child.
    fn app_pid(&self) -> anyhow::Result<u32> {
        match children_of(self.pid)[..] {
            [pid] => Ok(pid),
            ref kids => bail!("weaver {} has children {kids:?}, not one app", self.pid),
        }
    }

    fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal);
    }

    /// Waits for `weaver` to exit; its exit code, or 128 + signal.
    async fn exit_code(&mut self) -> anyhow::Result<i32> {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .context("weaver single deploy did not exit")??;
        Ok(code(status))
    }

    /// Everything it wrote to stderr (complete once it exited).
    async fn stderr_text(&self) -> String {
        let mut rx = self.stderr.clone();
        // The reader marks the end of the stream by closing the channel.
        let _ = tokio::time::timeout(DEADLINE, rx.wait_for(|_| false)).await;
        self.stderr.borrow().join("\n")
    }
}

/// Collects the lines of `r` into a watch channel, closed at EOF.
fn lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R) -> watch::Receiver<Vec<String>> {
    let (tx, rx) = watch::channel(Vec::new());
    tokio::spawn(async move {
        let mut r = BufReader::new(r).lines();
        while let Ok(Some(line)) = r.next_line().await {
            tx.send_modify(|all| all.push(line));
        }
    });
    rx
}

fn code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Writes an executable shell script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_serves_on_its_single_listener_and_ctrl_c_exits_130() -> anyhow::Result<()> {
    let data = TempDir::new("weaver-data")?;
    let cfg = config(
        "hello",
        &bins().bin("hello"),
        "[single]\nlisteners.hello = { address = \"127.0.0.1:0\" }\n\n\
         [multi]\nlisteners.hello = { address = \"127.0.0.1:1\" }\n",
    );
    let mut run = Run::start(&cfg, data.path())?;
    let logged = run.line(&run.stderr, "hello listener available").await?;
    // The app printed its box to the stderr it shares with weaver.
    run.line(&run.stderr, "app        : hello").await?;
    let app = run.app_pid()?;
    assert_eq!(
        weaver_integration::exe_of(app),
        Some(std::fs::canonicalize(bins().bin("hello"))?)
    );

    // The run is listed, as its own process, with the port it was given.
    let report = status_in(data.path(), "single").await?;
    let listed = report
        .by_pid(app)
        .with_context(|| format!("app {app} not in {report:?}"))?;
    assert_eq!(listed.app, "hello");
    let addr = listed.listener("hello").context("no hello listener")?;
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    assert!(logged.contains(addr), "{logged} does not name {addr}");
    let (status, body) = http_get(addr, "/hello?name=Weaver").await?;
    assert_eq!((status, body.as_str()), (200, "Hello, revaeW!"));

    // ctrl-c: passed on to the app, which dies of it; weaver reports that
    // as a shell does.
    run.signal(Signal::SIGINT);
    assert_eq!(run.exit_code().await?, 128 + Signal::SIGINT as i32);
    wait_gone(&[app], DEADLINE).await?;
    assert!(
        status_in(data.path(), "single")
            .await?
            .deployments
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_dies_with_weaver() -> anyhow::Result<()> {
    let data = TempDir::new("weaver-data")?;
    let cfg = config("hello", &bins().bin("hello"), "");
    let mut run = Run::start(&cfg, data.path())?;
    run.line(&run.stderr, "hello listener available").await?;
    let app = run.app_pid()?;
    run.signal(Signal::SIGKILL);
    assert_eq!(run.exit_code().await?, 128 + Signal::SIGKILL as i32);
    // Nobody forwarded anything: the parent-death signal ended it.
    wait_gone(&[app], DEADLINE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_app_and_weaver_exits_with_its_status() -> anyhow::Result<()> {
    let dir = TempDir::new("weaver-single-app")?;
    // Traps the signal, says so, and exits with the status given as $1. The
    // `sleep` it waits on is killed by the trap, so nothing is left behind.
    let app = script(
        dir.path(),
        "trapper",
        "trap 'kill $s; echo \"got INT\"; exit \"$1\"' INT\n\
         trap 'kill $s; echo \"got TERM\"; exit \"$1\"' TERM\n\
         sleep 30 & s=$!\n\
         echo ready\n\
         wait $s\n",
    )?;
    for (signal, status) in [(Signal::SIGTERM, 7), (Signal::SIGINT, 9)] {
        let data = TempDir::new("weaver-data")?;
        let cfg = config("trapper", &app, &format!("args = [\"{status}\"]\n"));
        let mut run = Run::start(&cfg, data.path())?;
        run.line(&run.stdout, "ready").await?;
        let pid = run.app_pid()?;
        run.signal(signal);
        let name = signal.as_str().trim_start_matches("SIG");
        run.line(&run.stdout, &format!("got {name}")).await?;
        assert_eq!(run.exit_code().await?, status, "after {signal}");
        wait_gone(&[pid], DEADLINE).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_gets_args_env_and_config_and_its_status_is_weavers() -> anyhow::Result<()> {
    let dir = TempDir::new("weaver-single-app")?;
    let app = script(
        dir.path(),
        "echoer",
        "echo \"config=$SERVICEWEAVER_CONFIG greeting=$GREETING args=$*\"\n\
         case \"$1\" in\n  kill-*) kill -s \"${1#kill-}\" $$ ;;\nesac\n\
         exit \"$1\"\n",
    )?;
    let cases = [
        ("0", 0),
        ("3", 3),
        ("42", 42),
        ("kill-TERM", 128 + Signal::SIGTERM as i32),
    ];
    for (arg, expected) in cases {
        let data = TempDir::new("weaver-data")?;
        let cfg = config(
            "echoer",
            &app,
            &format!("args = [\"{arg}\", \"two words\"]\nenv = [\"GREETING=hi there\"]\n"),
        );
        let mut run = Run::start(&cfg, data.path())?;
        let status = run.exit_code().await?;
        let line = run.line(&run.stdout, "config=").await?;
        let path = run._config_dir.path().join("weaver.toml");
        assert_eq!(
            line,
            format!(
                "config={} greeting=hi there args={arg} two words",
                path.display()
            )
        );
        assert_eq!(status, expected, "for {arg}; {}", run.stderr_text().await);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_refuses_its_config_gives_weaver_its_status() -> anyhow::Result<()> {
    // The [single] listener is well formed but hello has no such listener:
    // hello itself refuses to start, and weaver exits as hello does when run
    // directly with that config.
    let data = TempDir::new("weaver-data")?;
    let cfg = config(
        "hello",
        &bins().bin("hello"),
        "[single]\nlisteners.nope = { address = \"127.0.0.1:0\" }\n",
    );
    let mut run = Run::start(&cfg, data.path())?;
    let status = run.exit_code().await?;
    let stderr = run.stderr_text().await;
    assert!(
        stderr.contains("listener \"nope\" specified in [single] listeners not found"),
        "{stderr}"
    );
    let direct = Command::new(bins().bin("hello"))
        .env(
            "SERVICEWEAVER_CONFIG",
            run._config_dir.path().join("weaver.toml"),
        )
        .env("WEAVER_DATA_DIR", data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    let direct = tokio::time::timeout(DEADLINE, direct).await??;
    assert_ne!(code(direct), 0);
    assert_eq!(status, code(direct));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_are_clear_errors_and_start_nothing() -> anyhow::Result<()> {
    let dir = TempDir::new("weaver-single-app")?;
    let marker = dir.path().join("started");
    // Leaves a mark if it ever runs.
    let body = format!("touch '{}'\nexit 0\n", marker.display());
    let app = script(dir.path(), "marker", &body)?;
    let unrunnable = dir.path().join("not-executable");
    std::fs::write(&unrunnable, format!("#!/bin/sh\n{body}"))?;
    std::fs::set_permissions(&unrunnable, std::fs::Permissions::from_mode(0o644))?;
    let missing = dir.path().join("missing");

    let cases: [(String, String); 6] = [
        (
            config("marker", &app, "[single]\nlistners.hello = {}\n"),
            "unknown key \"listners\" in [single] (expected one of: listeners)".into(),
        ),
        (
            config("marker", &app, "binnary = \"x\"\n"),
            "unknown key \"binnary\" in [serviceweaver]".into(),
        ),
        (
            config(
                "marker",
                &app,
                "[single]\nlisteners.hello = { address = \"12345\" }\n",
            ),
            "invalid \"address\" in [single.listeners.hello]: \"12345\" is not of the form host:port"
                .into(),
        ),
        (
            config("marker", &app, "[single\n"),
            "invalid TOML".into(),
        ),
        (
            config("marker", &missing, ""),
            format!("binary \"{}\" doesn't exist", missing.display()),
        ),
        (
            config("marker", &unrunnable, ""),
            format!("binary \"{}\" is not executable", unrunnable.display()),
        ),
    ];
    for (cfg, expected) in cases {
        let data = TempDir::new("weaver-data")?;
        let mut run = Run::start(&cfg, data.path())?;
        let status = run.exit_code().await?;
        let stderr = run.stderr_text().await;
        assert!(
            stderr.contains("weaver.toml") && stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
        assert_eq!(status, 64, "{stderr}");
        assert!(!marker.exists(), "the app ran despite:\n{cfg}");
    }
    Ok(())
}

#[tokio::test]
async fn help_says_what_the_app_gets_and_how_weaver_exits() -> anyhow::Result<()> {
    let out =
        weaver_integration::weaver_in(Path::new("/nonexistent"), &["single", "deploy", "--help"])
            .await?;
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout)?;
    for needle in [
        "SERVICEWEAVER_CONFIG",
        "[single]",
        "SIGTERM",
        "130",
        "<CONFIG>",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
    Ok(())
}
