//! The executor against the real runc (and crun, for its seccomp filter), over a busybox
//! root directory (Debian's `busybox-static`). Skipped with a reason when runc, busybox
//! or root is missing, except under CI, where that fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_runtime::{
    CancellationToken, Error, Executor, Mount, MountSource, Network, OciRuntime, Process,
    RunRequest, RuntimeChoice, Security, Stream,
};

fn skip(reason: &str) -> Option<()> {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("CI=true and this test cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A root directory with busybox, its applets and a small passwd/group; and runc.
fn setup() -> Option<(tempfile::TempDir, OciRuntime)> {
    setup_with(RuntimeChoice::Runc)
}

/// [`setup`] with another runtime.
fn setup_with(choice: RuntimeChoice) -> Option<(tempfile::TempDir, OciRuntime)> {
    if !rustix::process::geteuid().is_root() {
        return skip("running containers needs root").and(None);
    }
    let Some(bb) = busybox() else {
        return skip("busybox is not installed (apt-get install busybox-static)").and(None);
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(&bb, root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(&bb)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\naudio:x:29:app\n",
    )
    .unwrap();
    let rt = match OciRuntime::select(&choice, &tmp.path().join("work")) {
        Ok(s) => s.runtime,
        Err(e) => return skip(&format!("{e} (apt-get install runc crun)")).and(None),
    };
    Some((tmp, rt))
}

fn process(script: &str) -> Process {
    Process {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into(), "GREETING=hello".into()],
        cwd: "/".into(),
        user: String::new(),
        network: Network::Host,
        security: Security::Sandbox,
        hostname: "strata".into(),
    }
}

struct Ran {
    result: Result<i32, Error>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

async fn run(rt: &OciRuntime, rootfs: &Path, p: &Process, mounts: &[Mount]) -> Ran {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut sink = |s: Stream, l: &str| match s {
        Stream::Stdout => stdout.push(l.to_string()),
        Stream::Stderr => stderr.push(l.to_string()),
    };
    let req = RunRequest {
        rootfs,
        process: p,
        mounts,
    };
    let cancel = CancellationToken::new();
    let result = rt.run(&req, &mut sink, &cancel).await.map(|s| s.code());
    Ran {
        result,
        stdout,
        stderr,
    }
}

#[tokio::test]
async fn output_env_exit_codes_and_hostname() {
    let Some((tmp, rt)) = setup() else { return };
    let root = tmp.path().join("rootfs");
    let r = run(
        &rt,
        &root,
        &process("echo $GREETING; echo oops >&2; hostname; printf 'no newline'; exit 3"),
        &[],
    )
    .await;
    assert_eq!(r.result.unwrap(), 3);
    assert_eq!(r.stdout, ["hello", "strata", "no newline"]);
    assert_eq!(r.stderr, ["oops"]);
}

#[tokio::test]
async fn users_resolve_in_the_image() {
    let Some((tmp, rt)) = setup() else { return };
    let root = tmp.path().join("rootfs");
    let mut p = process("id -u; id -g; id -G");
    p.user = "app".into();
    let r = run(&rt, &root, &p, &[]).await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    assert_eq!(r.stdout, ["1000", "1000", "1000 29"]);
    p.user = "123:456".into();
    let r = run(&rt, &root, &p, &[]).await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    assert_eq!(r.stdout, ["123", "456", "456"]);
    p.user = "nobody".into();
    let r = run(&rt, &root, &p, &[]).await;
    assert!(
        matches!(r.result, Err(Error::UnknownUser { .. })),
        "{:?}",
        r.result
    );
}

#[tokio::test]
async fn sandbox_capabilities_and_devices() {
    let Some((tmp, rt)) = setup() else { return };
    let root = tmp.path().join("rootfs");
    let r = run(
        &rt,
        &root,
        &process(
            "grep CapEff /proc/self/status; ls /dev | sort | tr '\\n' ' '; echo; cat /etc/hosts",
        ),
        &[],
    )
    .await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    // Docker's 14 capabilities.
    assert_eq!(r.stdout[0], "CapEff:\t00000000a80425fb");
    for dev in [
        "full", "null", "pts", "random", "shm", "tty", "urandom", "zero",
    ] {
        assert!(
            r.stdout[1].split(' ').any(|d| d == dev),
            "{dev} missing in {}",
            r.stdout[1]
        );
    }
    assert!(r.stdout[2].starts_with("127.0.0.1\tlocalhost strata"));
    let mut p = process("grep CapEff /proc/self/status");
    p.security = Security::Insecure;
    let r = run(&rt, &root, &p, &[]).await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    assert_ne!(r.stdout[0], "CapEff:\t00000000a80425fb");
}

#[tokio::test]
async fn network_none_has_only_loopback() {
    let Some((tmp, rt)) = setup() else { return };
    let root = tmp.path().join("rootfs");
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let mut p = process(script);
    p.network = Network::None;
    let r = run(&rt, &root, &p, &[]).await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    assert_eq!(r.stdout, ["lo"]);
    p.network = Network::Host;
    let r = run(&rt, &root, &p, &[]).await;
    assert!(r.stdout.len() > 1 || r.stdout != ["lo"], "{:?}", r.stdout);
}

#[tokio::test]
async fn mount_points_and_workdir() {
    let Some((tmp, rt)) = setup() else { return };
    let root = tmp.path().join("rootfs");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "bound\n").unwrap();
    let mounts = [
        Mount {
            destination: "/mnt/data".into(),
            source: MountSource::Bind {
                path: data.clone(),
                readonly: true,
            },
        },
        Mount {
            destination: "/scratch".into(),
            source: MountSource::Tmpfs {
                size: Some(1 << 20),
            },
        },
    ];
    let mut p =
        process("cat /mnt/data/f; pwd; touch /mnt/data/g || echo read-only; echo x > /scratch/x");
    p.cwd = "/work/dir".into();
    let r = run(&rt, &root, &p, &mounts).await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    assert_eq!(r.stdout, ["bound", "/work/dir", "read-only"]);
    // The working directory stays; mount points made for the run do not.
    assert!(root.join("work/dir").is_dir());
    for gone in [
        "mnt",
        "scratch",
        "proc",
        "dev",
        "sys",
        "etc/hosts",
        "etc/resolv.conf",
    ] {
        assert!(!root.join(gone).exists(), "{gone} was left behind");
    }
}

#[tokio::test]
async fn a_missing_program_is_a_runtime_error() {
    let Some((tmp, rt)) = setup() else { return };
    let root = tmp.path().join("rootfs");
    let mut p = process("");
    p.args = vec!["/no/such/program".into()];
    let r = run(&rt, &root, &p, &[]).await;
    let err = r.result.unwrap_err();
    assert!(err.to_string().contains("/no/such/program"), "{err}");
}

#[tokio::test]
async fn cancelling_kills_the_container() {
    cancelling_kills(RuntimeChoice::Runc, 60).await;
}

/// crun: on a cgroup v1 hybrid host its `kill` and `delete` run in the mount namespace
/// without the cgroup2 mount, as its `run` did.
#[tokio::test]
async fn cancelling_kills_the_crun_container() {
    cancelling_kills(RuntimeChoice::Crun, 61).await;
}

/// `seconds` tells this test's `sleep` from the other runtime's, running beside it.
async fn cancelling_kills(choice: RuntimeChoice, seconds: u32) {
    let Some((tmp, rt)) = setup_with(choice) else {
        return;
    };
    let root = tmp.path().join("rootfs");
    let rt = Arc::new(rt);
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = {
        let (rt, cancel, root) = (rt.clone(), cancel.clone(), root.clone());
        tokio::spawn(async move {
            let p = process(&format!("echo started; sleep {seconds}"));
            let req = RunRequest {
                rootfs: &root,
                process: &p,
                mounts: &[],
            };
            let mut sink = |_: Stream, l: &str| {
                let _ = tx.send(l.to_string());
            };
            rt.run(&req, &mut sink, &cancel).await
        })
    };
    assert_eq!(rx.recv().await.unwrap(), "started");
    let start = Instant::now();
    cancel.cancel();
    let result = task.await.unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // No sleep left running.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l == format!("sleep {seconds}")),
        "the container's process survived"
    );
}

#[test]
fn auto_prefers_crun_and_says_why_it_falls_back() {
    if rustix::process::geteuid().is_root() && busybox().is_some() {
        let tmp = tempfile::tempdir().unwrap();
        let Ok(selected) = OciRuntime::select(&RuntimeChoice::Auto, tmp.path()) else {
            skip("neither crun nor runc is installed");
            return;
        };
        match selected.runtime.name() {
            "crun" => assert!(selected.note.is_none()),
            "runc" => {
                if let Some(note) = &selected.note {
                    assert!(
                        note.starts_with("crun does not work on this host ("),
                        "{note}"
                    );
                    assert!(note.ends_with("); using runc"), "{note}");
                }
            }
            other => panic!("unexpected runtime {other}"),
        }
    }
}

#[tokio::test]
async fn sandboxed_steps_run_under_dockers_seccomp_policy() {
    seccomp_policy(RuntimeChoice::Runc).await;
}

/// crun gets the filter compiled once (`run.oci.seccomp_bpf_data`): the first step and
/// the next ones are under the same policy.
#[tokio::test]
async fn crun_steps_run_under_dockers_seccomp_policy() {
    seccomp_policy(RuntimeChoice::Crun).await;
}

async fn seccomp_policy(choice: RuntimeChoice) {
    let Some((tmp, rt)) = setup_with(choice) else {
        return;
    };
    if !rt.seccomp() {
        skip("this runtime was built without seccomp (`RUNTIME features`)");
        return;
    }
    let root = tmp.path().join("rootfs");
    // A user namespace needs no capability, so only the filter stops `unshare`; the
    // filter allows `uname`, as it does everything Docker's profile allows.
    let script = "grep '^Seccomp:' /proc/self/status; uname -s; \
                  unshare -U true 2>&1 && echo unshared || echo refused";
    for step in 0..2 {
        let r = run(&rt, &root, &process(script), &[]).await;
        assert_eq!(r.result.unwrap(), 0, "step {step}: {:?}", r.stderr);
        assert_eq!(r.stdout[0], "Seccomp:\t2", "step {step}: filter mode");
        assert_eq!(r.stdout[1], "Linux", "step {step}");
        assert!(
            r.stdout[2].contains("Operation not permitted"),
            "step {step}: {:?}",
            r.stdout
        );
        assert_eq!(r.stdout.last().unwrap(), "refused", "step {step}");
    }
    // --security=insecure: no filter, and unshare works.
    let mut p = process(script);
    p.security = Security::Insecure;
    let r = run(&rt, &root, &p, &[]).await;
    assert_eq!(r.result.unwrap(), 0, "{:?}", r.stderr);
    assert_eq!(r.stdout, ["Seccomp:\t0", "Linux", "unshared"]);
}
