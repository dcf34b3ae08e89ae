//! Crash safety through the real binary: builds killed with SIGKILL at random points
//! (during a RUN, a layer write, a commit, an export; every third beside another build
//! of the same steps, which must succeed; every fourth beside a garbage collection of
//! the whole cache, killed too if still running), each followed by a build that must
//! succeed with the right result and a `strata system check` that must come out clean,
//! with no mount or container of the killed process left behind; and a blob corrupted
//! on disk, which `system check` names and `--repair` removes so the next build
//! succeeds.
//!
//! The kill points come from a seeded generator: the seed is printed, and
//! `STRATA_CRASH_SEED=N` replays a run (`STRATA_CRASH_KILLS` changes the number of kills).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// splitmix64: enough randomness for kill points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Two stages: a COPY of the generated context, a RUN writing about 3 MB (deterministic
/// content, so the result can be checked), a final stage copying from the first and
/// running on it. `V` (a build arg) decides which steps the cache answers.
const DOCKERFILE: &str = "FROM busybox AS base\n\
    COPY src/ /src/\n\
    ARG V=0\n\
    RUN seq 1 500000 > /blob && echo $V > /v && cat /src/* | wc -c > /srcsize\n\
    FROM busybox\n\
    ARG V=0\n\
    COPY --from=base /blob /v /srcsize /out/\n\
    RUN echo \"v=$(cat /out/v) blob=$(wc -c < /out/blob) src=$(cat /out/srcsize) arg=$V\" > /result\n";

/// Lines `seq` writes in the first RUN; files of the generated context.
const SEQ: usize = 500_000;
const FILES: usize = 16;

/// A context of `files` files of 64 KiB each under `src/`.
fn generated_context(files: usize) -> tempfile::TempDir {
    let ctx = context(&[("Dockerfile", DOCKERFILE, 0o644)]);
    std::fs::create_dir(ctx.path().join("src")).unwrap();
    for i in 0..files {
        let line = format!("file {i} of the generated context\n");
        let content = line.repeat(65536 / line.len() + 1);
        std::fs::write(ctx.path().join(format!("src/f{i:03}")), &content[..65536]).unwrap();
    }
    ctx
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Processes whose command line or environment names `dir` (a runtime left running for
/// a container, `runc init` waiting for it).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        let read = |f: &str| {
            std::fs::read(entry.path().join(f))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default()
        };
        let (cmdline, environ) = (read("cmdline"), read("environ"));
        if cmdline.contains(&needle) || environ.contains(&needle) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// `strata system check`, which must exit 0 with nothing damaged.
fn assert_clean(s: &Strata, what: &str) {
    let out = s.run(&["system", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("damaged"),
        "{what}: system check failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The build of round `round` with build arg `v`, exporting in one of three ways.
fn build_args(bc: &str, v: u64, round: u64, dir: &Path) -> Vec<String> {
    let mut args = vec![
        "build".to_string(),
        "--progress".into(),
        "json".into(),
        "--build-context".into(),
        bc.to_string(),
        "--build-arg".into(),
        format!("V={v}"),
    ];
    match round % 3 {
        0 => args.extend(["-t".into(), format!("app:{v}")]),
        1 => args.extend([
            "-o".into(),
            format!("type=oci,dest={}", dir.join("image.tar").display()),
        ]),
        _ => {}
    }
    args
}

/// A build's progress, line by line, as (event, instruction) pairs, on a channel.
fn events(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let name = e["vertex"]["name"].as_str().unwrap_or("");
            let instruction = name.split("] ").nth(1).unwrap_or(name);
            let word = instruction.split_whitespace().next().unwrap_or("-");
            let kind = e["event"].as_str().unwrap_or("?");
            if tx.send(format!("{kind} {word}")).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn builds_killed_at_random_points_leave_a_store_the_next_build_uses() {
    let Some((s, bc)) = run_store() else { return };
    let seed = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let kills: usize = std::env::var("STRATA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    eprintln!("crash loop: seed {seed} ({kills} kills; STRATA_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let ctx = generated_context(FILES);
    let scratch = tempfile::tempdir().unwrap();

    // A cold build: how many progress events a build reports, to pick kill points among.
    let started = Instant::now();
    let cold = s
        .cmd()
        .args(build_args(&bc, 1000, 2, scratch.path()))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        cold.status.success(),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    let events_per_build = Build::parse(&cold.stdout, String::from_utf8_lossy(&cold.stderr).into())
        .events
        .len() as u64;
    eprintln!(
        "cold build: {:.2}s, {events_per_build} progress events",
        started.elapsed().as_secs_f64()
    );

    let mut phases = std::collections::BTreeMap::<String, usize>::new();
    let loop_start = Instant::now();
    let mut killed = 0;
    let mut killed_pids = Vec::new();
    let mut round = 0u64;
    while killed < kills {
        assert!(
            round < 3 * kills as u64,
            "most builds finished before their kill point: {phases:?}"
        );
        round += 1;
        // A third of the rounds run every step (a value never built), the rest find
        // some or all of them cached.
        let v = if rng.below(3) == 0 {
            100 + round
        } else {
            rng.below(3)
        };
        // Killed after a random number of progress events, then a random delay: inside
        // a RUN, a layer commit, an export, or between steps.
        let after_events = rng.below(events_per_build / 2 + 1);
        let delay = Duration::from_millis(rng.below(200));
        let out = tempfile::tempdir_in(scratch.path()).unwrap();
        let mut child = s
            .cmd()
            .args(build_args(&bc, v, round, out.path()))
            .arg(ctx.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Every fourth round a garbage collection of the whole build cache runs beside
        // the build, and is killed at the same point if it is still running.
        let mut gc = round.is_multiple_of(4).then(|| {
            s.cmd()
                .args(["cache", "prune", "--all", "--force"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        });
        // Every third round another build of the same step runs beside it, and must
        // succeed whatever happens to the killed one (it may be waiting for it).
        let companion = (round % 3 == 1).then(|| {
            let rootfs = tempfile::tempdir_in(scratch.path()).unwrap();
            let child = checked_build(&s, &bc, v, ctx.path(), rootfs.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, rootfs)
        });
        let rx = events(child.stderr.take().unwrap());
        let mut last = String::from("(no event yet)");
        for _ in 0..after_events {
            match rx.recv() {
                Ok(e) => last = e,
                Err(_) => break, // the build ended
            }
        }
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL, to strata alone
            killed += 1;
            killed_pids.push(child.id());
        }
        child.wait().unwrap();
        if let Some(gc) = &mut gc {
            if gc.try_wait().unwrap().is_none() {
                gc.kill().unwrap();
                *phases.entry("(a gc killed)".into()).or_default() += 1;
            }
            gc.wait().unwrap();
        }
        last = rx.try_iter().last().map_or(last, |e| e);
        let phase = if finished {
            "(finished before the kill)".to_string()
        } else {
            format!("after {last}")
        };
        *phases.entry(phase.clone()).or_default() += 1;
        let what = format!(
            "round {round} (seed {seed}, V={v}, killed {}ms {phase})",
            delay.as_millis()
        );

        if let Some((companion, rootfs)) = companion {
            let out = companion.wait_with_output().unwrap();
            assert_result(
                out,
                rootfs.path(),
                v,
                &format!("{what}: the build beside it"),
            );
        }

        // The next build succeeds, with the right result.
        let rootfs = tempfile::tempdir_in(scratch.path()).unwrap();
        let result = checked_build(&s, &bc, v, ctx.path(), rootfs.path())
            .output()
            .unwrap();
        assert_result(result, rootfs.path(), v, &format!("{what}: the next build"));
        assert_clean(&s, &what);
        assert_eq!(mounts_under(s.root()), Vec::<String>::new(), "{what}");
        assert_eq!(processes_naming(s.root()), Vec::<String>::new(), "{what}");
    }
    eprintln!(
        "{killed} kills in {round} builds, {:.1}s; last event before each kill: {phases:#?}",
        loop_start.elapsed().as_secs_f64()
    );
    assert!(
        phases.len() >= 4,
        "the kills should land in several phases: {phases:?}"
    );

    // The next RUN that picks a runtime removes the killed builds' container cgroups.
    let mut last = s.cmd();
    last.args(build_args(&bc, 0, 2, scratch.path()))
        .arg("--no-cache")
        .arg(ctx.path());
    run_ok(&mut last);
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|h| std::fs::read_dir(h.path()).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            killed_pids
                .iter()
                .any(|pid| n.starts_with(&format!("strata-{pid}-")))
        })
        .collect();
    assert_eq!(cgroups, Vec::<String>::new(), "cgroups of killed builds");
}

/// The build with `V=v` whose root file system goes to `rootfs`.
fn checked_build(s: &Strata, bc: &str, v: u64, ctx: &Path, rootfs: &Path) -> Command {
    let mut c = s.cmd();
    c.args(build_args(bc, v, 2, rootfs))
        .arg("-o")
        .arg(format!("type=local,dest={}", rootfs.display()))
        .arg(ctx);
    c
}

/// A [`checked_build`] succeeded and made the right `/result`.
fn assert_result(out: Output, rootfs: &Path, v: u64, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(rootfs.join("result")).unwrap();
    let blob = (1..=SEQ).map(|n| n.to_string().len() + 1).sum::<usize>();
    assert_eq!(
        got,
        format!("v={v} blob={blob} src={} arg={v}\n", FILES * 65536),
        "{what}"
    );
}

/// `system check` exits 1 naming the damaged `kind` (`blob`, `layer`) `name`;
/// `--repair` says it repaired it, and the store checks clean afterwards. Returns what
/// `--repair` printed.
fn check_then_repair(s: &Strata, kind: &str, name: &str) -> String {
    let mut said = String::new();
    for (args, code, mark) in [
        (&["system", "check"][..], 1, "damaged"),
        (&["system", "check", "--repair"][..], 0, "repaired"),
    ] {
        let out = s.run(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        let prefix = format!("{mark}: {kind} ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(name)),
            "{args:?} should say `{prefix}… {name}`:\n{text}"
        );
        said = text.into_owned();
    }
    assert_clean(s, "after --repair");
    said
}

#[test]
fn a_corrupt_blob_is_reported_repaired_and_rebuilt() {
    let Some((s, bc)) = run_store() else { return };
    let ctx = generated_context(2);
    let build = |extra: &[&str]| {
        let mut args = vec!["--build-context", &bc, "-o"];
        args.extend_from_slice(extra);
        s.build(ctx.path(), &args)
    };
    let oci = tempfile::tempdir().unwrap();
    let dest = format!("type=oci,dest={}", oci.path().join("a.tar").display());
    build(&[&dest]);
    assert_clean(&s, "after the first build");

    // Flip one byte of the largest blob (a compressed layer).
    let blobs = s.root().join("blobs/sha256");
    let (victim, _) = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().unwrap().len())
        })
        .max_by_key(|(_, len)| *len)
        .unwrap();
    let digest = format!("sha256:{}", victim.file_name().unwrap().to_string_lossy());
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

    let out = s.run(&["system", "check", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["damaged"], true, "{report}");
    assert_eq!(
        report["problems"],
        serde_json::json!([{
            "problem": "corrupt_blob",
            "digest": digest,
            "actual": sha256(&bytes),
        }]),
        "{report}"
    );

    check_then_repair(&s, "blob", &digest);
    assert!(!victim.exists());

    // The next build writes the blob again, intact.
    let dest = format!("type=oci,dest={}", oci.path().join("b.tar").display());
    build(&[&dest]);
    assert_eq!(std::fs::read(&victim).unwrap().len(), bytes.len());
    assert_clean(&s, "after the rebuild");
}

#[test]
fn a_corrupt_layer_is_reported_and_repaired() {
    let Some((s, bc)) = run_store() else { return };
    let ctx = generated_context(2);
    let first = s.build(ctx.path(), &["--build-context", &bc]);
    let layers = s.root().join("layers");
    // A file of the COPY's layer, changed in place.
    let victim = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("src/f000").is_file())
        .expect("the COPY's layer");
    std::fs::write(victim.join("src/f000"), b"tampered").unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();

    let said = check_then_repair(&s, "layer", &name);
    assert!(!victim.exists());
    assert!(
        said.lines()
            .any(|l| l.starts_with("repaired: cache record") && l.contains(&name)),
        "the records of the layer go with it:\n{said}"
    );

    // The records that needed it are gone: the COPY runs again and the image is the same.
    let again = s.build(ctx.path(), &["--build-context", &bc]);
    assert!(
        again.executed().iter().any(|n| n.contains("COPY src/")),
        "{:?}",
        again.executed()
    );
    let original = std::fs::read(ctx.path().join("src/f000")).unwrap();
    let copies: Vec<Vec<u8>> = std::fs::read_dir(&layers)
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("src/f000")).ok())
        .collect();
    assert_eq!(
        copies,
        [original],
        "one intact copy of the file, in the new layer"
    );
    assert!(!first.id.is_empty() && !again.id.is_empty());
}
