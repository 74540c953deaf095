//! The multiprocess test runner, checked from outside: a body that fails
//! leaves no replica behind.

use weaver_integration::{TempDir, bins};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_multi_test_leaves_no_process_behind() -> anyhow::Result<()> {
    let dir = TempDir::new("multi-fail")?;
    let pids_file = dir.path().join("pids");
    let exe = bins().bin("multi-fail");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(&exe)
            .env("MULTI_FAIL_PIDS", &pids_file)
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A failed test: the panic's exit status, naming the runner and why.
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("multi_fail::fails [multi runner]: the fixture fails on purpose"),
        "{stderr}"
    );
    let pids: Vec<u32> = std::fs::read_to_string(&pids_file)?
        .lines()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    assert_eq!(pids.len(), 2, "two replicas answered: {pids:?}");
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "replica {pid} outlived the failed test"
        );
    }
    // Nor any other process running the fixture.
    let exe = exe.canonicalize()?;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        if let Ok(target) = std::fs::read_link(path.join("exe")) {
            assert_ne!(target, exe, "{} still runs the fixture", path.display());
        }
    }
    Ok(())
}
