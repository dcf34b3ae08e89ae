//! RUN --mount through the real binary and runc: cache mounts persist across builds
//! and stay out of the image, tmpfs and bind mounts leave nothing behind (`rw` writes
//! are discarded), secrets are readable by the step and nowhere else.

mod common;

use std::path::Path;

use common::*;

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_the_image() {
    let Some((s, bc)) = run_setup() else { return };
    let step = |n: u32| {
        context(&[(
            "Dockerfile",
            &format!(
                "FROM busybox\n\
                 RUN --mount=type=cache,target=/var/cache/app,uid=1000,mode=0700 \
                 echo build{n} >> /var/cache/app/log && cp /var/cache/app/log /log{n} \
                 && stat -c '%u %a' /var/cache/app > /owner\n"
            ),
            0o644,
        )])
    };
    let (_, out1) = build_local(&s, &bc, step(1).path(), &[]);
    let (_, out2) = build_local(&s, &bc, step(2).path(), &[]);
    let (t1, t2) = (dir_tree(out1.path()), dir_tree(out2.path()));
    assert_eq!(file(&t1, "log1"), "build1\n");
    assert_eq!(file(&t2, "log2"), "build1\nbuild2\n");
    // mode/uid apply when the cache directory is made.
    assert_eq!(file(&t1, "owner"), "1000 700\n");
    for t in [&t1, &t2] {
        assert!(!t.contains_key("var"), "the cache mount reached the image");
    }
    // It lives in the store, by the sha256 of its id (the target when there is none).
    let key = sha256(b"/var/cache/app");
    let dir = s
        .root()
        .join("cache-mounts")
        .join(key.strip_prefix("sha256:").unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("log")).unwrap(),
        "build1\nbuild2\n"
    );
}

#[test]
fn tmpfs_and_bind_mounts_leave_nothing_behind() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox AS data\n\
             RUN mkdir /d && echo from-stage > /d/f\n\
             FROM busybox\n\
             RUN --mount=type=tmpfs,target=/scratch,size=1m echo y > /scratch/y && grep -c scratch /proc/mounts > /tmpfs\n\
             RUN --mount=type=bind,from=data,source=/d,target=/in cat /in/f > /copied && (touch /in/g 2>/dev/null || echo ro > /ro)\n\
             RUN --mount=type=bind,from=data,source=/d,target=/in,rw echo changed > /in/f && cat /in/f > /rw\n\
             RUN --mount=type=bind,from=data,source=/d,target=/in cat /in/f > /after\n\
             RUN --mount=type=bind,source=files,target=/ctx cat /ctx/hello > /hello\n",
            0o644,
        ),
        ("files/hello", "from the context\n", 0o644),
    ]);
    let (_, out) = build_local(&s, &bc, ctx.path(), &[]);
    let t = dir_tree(out.path());
    assert_eq!(file(&t, "tmpfs"), "1\n");
    assert_eq!(file(&t, "copied"), "from-stage\n");
    assert_eq!(file(&t, "ro"), "ro\n");
    assert_eq!(file(&t, "rw"), "changed\n");
    // rw writes were discarded.
    assert_eq!(file(&t, "after"), "from-stage\n");
    assert_eq!(file(&t, "hello"), "from the context\n");
    for gone in ["scratch", "in", "ctx", "d"] {
        assert!(!t.contains_key(gone), "{gone} reached the image");
    }
}

#[test]
fn secrets_reach_the_step_and_nothing_else() {
    let Some((s, bc)) = run_setup() else { return };
    let secret = "s3cr3t-7f1e9c2a-do-not-leak";
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("token");
    std::fs::write(&src, secret).unwrap();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /len && stat -c '%a %u' /run/secrets/token > /perm\n\
         RUN --mount=type=secret,id=token,env=TOKEN,uid=1000 sh -c 'echo ${#TOKEN}' > /envlen\n\
         RUN --mount=type=secret,id=absent echo optional > /optional\n",
        0o644,
    )]);
    let oci = tempfile::tempdir().unwrap();
    let (b, out) = build_local(
        &s,
        &bc,
        ctx.path(),
        &[
            "--secret",
            &format!("id=token,src={}", src.display()),
            "-o",
            &format!("type=oci,dest={},tar=false", oci.path().display()),
        ],
    );
    let t = dir_tree(out.path());
    assert_eq!(file(&t, "len").trim(), secret.len().to_string());
    assert_eq!(file(&t, "perm"), "400 0\n");
    assert_eq!(file(&t, "envlen").trim(), secret.len().to_string());
    assert_eq!(file(&t, "optional"), "optional\n");
    assert!(
        !t.contains_key("run"),
        "the secret's mount point reached the image"
    );
    // Not in any file of the store (layers, blobs, cache records), the image or the
    // progress.
    for root in [s.root(), oci.path(), out.path()] {
        for p in walk(root) {
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "the secret is in {}",
                    p.display()
                );
            }
        }
    }
    assert!(!b.stderr.contains(secret));

    // A required secret that was not given fails the step.
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=missing,required cat /run/secrets/missing\n",
        0o644,
    )]);
    let err = s.fails(&[
        "build",
        "--build-context",
        &bc,
        ctx.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains(
            "secret \"missing\" is required but was not given (pass --secret id=missing,src=PATH)"
        ),
        "{err}"
    );
}

#[test]
fn a_bind_of_the_context_is_cached_by_what_it_exposes() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=bind,source=src,target=/src cat /src/a > /a\n",
            0o644,
        ),
        ("src/a", "one\n", 0o644),
        ("other", "not mounted\n", 0o644),
    ]);
    let runs = |b: &Build| b.executed().iter().filter(|n| n.contains("] RUN ")).count();
    let (b1, out1) = build_local(&s, &bc, ctx.path(), &[]);
    assert_eq!(runs(&b1), 1);
    assert_eq!(file(&dir_tree(out1.path()), "a"), "one\n");
    // A file outside the mounted source changes nothing.
    write(ctx.path(), "other", "changed\n");
    let (b2, _) = build_local(&s, &bc, ctx.path(), &[]);
    assert_eq!(runs(&b2), 0, "{:?}", b2.executed());
    // A file the mount exposes does.
    write(ctx.path(), "src/a", "two\n");
    let (b3, out3) = build_local(&s, &bc, ctx.path(), &[]);
    assert_eq!(runs(&b3), 1, "{:?}", b3.executed());
    assert_eq!(file(&dir_tree(out3.path()), "a"), "two\n");
}

/// A private `ssh-agent` (its socket in a temp dir) holding one fresh ed25519 key;
/// stopped by its PID on drop.
struct Agent {
    child: std::process::Child,
    sock: std::path::PathBuf,
    /// `ssh-keygen -l` of the key: `256 SHA256:… comment (ED25519)`.
    fingerprint: String,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Option<Agent> {
        let agent = tool("ssh-agent", "openssh-client")?;
        let add = tool("ssh-add", "openssh-client")?;
        let keygen = tool("ssh-keygen", "openssh-client")?;
        let dir = tempfile::Builder::new().prefix("agent").tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = std::process::Command::new(agent)
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut me = Agent {
            child,
            sock,
            fingerprint: String::new(),
            _dir: dir,
        };
        // Bounded wait for the socket (not a timing assertion).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !me.sock.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent made no socket"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key = me._dir.path().join("key");
        run_ok(
            std::process::Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "strata-test", "-f"])
                .arg(&key),
        );
        run_ok(
            std::process::Command::new(add)
                .env("SSH_AUTH_SOCK", &me.sock)
                .arg(&key),
        );
        let fp = run_ok(
            std::process::Command::new(keygen)
                .arg("-lf")
                .arg(key.with_extension("pub")),
        );
        me.fingerprint = String::from_utf8(fp).unwrap().trim().to_string();
        Some(me)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's `ssh-add` with the libraries `ldd` lists and its loader, copied into
/// `dir`: busybox has no ssh client, so the container runs
/// `DIR/ld-linux… --library-path DIR DIR/ssh-add`. Returns the loader's file name.
fn copy_ssh_add(dir: &Path) -> Option<String> {
    let ssh_add = tool("ssh-add", "openssh-client")?;
    std::fs::create_dir_all(dir).unwrap();
    let ldd = run_ok(std::process::Command::new("ldd").arg(&ssh_add));
    let mut loader = None;
    for line in String::from_utf8_lossy(&ldd).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let name = Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("ld-linux") {
            loader = Some(name.clone());
        }
        std::fs::copy(path, dir.join(&name)).unwrap();
    }
    std::fs::copy(&ssh_add, dir.join("ssh-add")).unwrap();
    loader
}

#[test]
fn ssh_mounts_forward_the_agent_with_the_sockets_owner_and_mode() {
    let Some((s, bc)) = run_setup() else { return };
    let Some(agent) = Agent::start() else { return };
    let ctx = context(&[("Dockerfile", "", 0o644)]);
    let Some(loader) = copy_ssh_add(&ctx.path().join("ssh")) else {
        return;
    };
    let ssh_add = format!("/opt/ssh/{loader} --library-path /opt/ssh /opt/ssh/ssh-add -l");
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\n\
             RUN --mount=type=ssh --mount=type=bind,source=ssh,target=/opt/ssh \
             test -S /run/buildkit/ssh_agent.0 && stat -c '%a %u %g' /run/buildkit/ssh_agent.0 > /perm0 \
             && echo \"$SSH_AUTH_SOCK\" > /env0 && {ssh_add} > /keys0\n\
             USER app\n\
             RUN --mount=type=ssh,id=other,target=/tmp/agent.sock,uid=1000,gid=1001,mode=0660 \
             --mount=type=ssh --mount=type=bind,source=ssh,target=/opt/ssh \
             stat -c '%a %u %g' /tmp/agent.sock > /tmp/perm1 && echo \"$SSH_AUTH_SOCK\" > /tmp/env1 \
             && test -S /run/buildkit/ssh_agent.1 && {ssh_add} > /tmp/keys1\n\
             RUN --mount=type=ssh,id=absent echo optional > /tmp/optional\n"
        ),
    );
    let out = tempfile::tempdir().unwrap();
    let sock = agent.sock.to_str().unwrap();
    s.build_env(
        ctx.path(),
        &[
            "--build-context",
            &bc,
            "-o",
            &format!("type=local,dest={}", out.path().display()),
            "--ssh",
            "default",
            "--ssh",
            &format!("other={sock}"),
        ],
        &[("SSH_AUTH_SOCK", sock)],
    );
    let t = dir_tree(out.path());
    // The default: /run/buildkit/ssh_agent.0, 0600 root, SSH_AUTH_SOCK pointing at it.
    assert_eq!(file(&t, "perm0"), "600 0 0\n");
    assert_eq!(file(&t, "env0"), "/run/buildkit/ssh_agent.0\n");
    // The agent answers through it: it lists the test's key.
    assert_eq!(file(&t, "keys0").trim(), agent.fingerprint);
    // mode/uid/gid apply; SSH_AUTH_SOCK is the first ssh mount; the second default
    // target is numbered 1; user app reaches the agent through its own socket.
    assert_eq!(file(&t, "tmp/perm1"), "660 1000 1001\n");
    assert_eq!(file(&t, "tmp/env1"), "/tmp/agent.sock\n");
    assert_eq!(file(&t, "tmp/keys1").trim(), agent.fingerprint);
    // An agent that was not given is skipped unless required.
    assert_eq!(file(&t, "tmp/optional"), "optional\n");
    for gone in ["run", "opt", "tmp/agent.sock"] {
        assert!(!t.contains_key(gone), "{gone} reached the image");
    }

    let required = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=ssh,id=deploy,required true\n",
        0o644,
    )]);
    let err = s.fails(&[
        "build",
        "--build-context",
        &bc,
        required.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("RUN --mount=type=ssh,id=deploy: no SSH agent was given for \"deploy\" and the mount is required (pass --ssh deploy=SOCKET)"),
        "{err}"
    );
    // --ssh default without an agent is a usage error, before anything is built.
    let out = s
        .cmd()
        .env_remove("SSH_AUTH_SOCK")
        .args(["build", "--ssh", "default", "--build-context", &bc])
        .arg(required.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SSH_AUTH_SOCK is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bind_of_the_context_hides_what_dockerignore_excludes() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=bind,target=/ctx cd /ctx && find . | sort > /ro.txt\n\
             RUN --mount=type=bind,target=/ctx,rw cd /ctx && rm -f keep.txt && touch new && find . | sort > /rw.txt\n\
             RUN --mount=type=bind,source=src,target=/s find /s | sort > /sub.txt\n",
            0o644,
        ),
        (".dockerignore", "*.log\nsecret/\nbuild\n!build/keep\n", 0o644),
        ("keep.txt", "kept\n", 0o644),
        ("debug.log", "noise\n", 0o644),
        ("src/app.c", "int main;\n", 0o644),
        ("src/trace.log", "noise\n", 0o644),
        ("secret/key", "do not mount\n", 0o600),
        ("build/keep/a.o", "o\n", 0o644),
        ("build/drop/b.o", "o\n", 0o644),
    ]);
    // A relative context path works as well as an absolute one.
    let out = tempfile::tempdir().unwrap();
    let o = s
        .cmd()
        .current_dir(ctx.path().parent().unwrap())
        .args(["build", "--progress", "plain", "--build-context", &bc, "-o"])
        .arg(format!("type=local,dest={}", out.path().display()))
        .arg(ctx.path().file_name().unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = dir_tree(out.path());
    // Docker's patterns are anchored at the root: `*.log` leaves src/trace.log.
    let expected = ".\n./.dockerignore\n./Dockerfile\n./build\n./build/keep\n./build/keep/a.o\n\
                    ./keep.txt\n./src\n./src/app.c\n./src/trace.log\n";
    assert_eq!(file(&t, "ro.txt"), expected);
    // rw: the same view, writable, and the writes go nowhere.
    assert_eq!(
        file(&t, "rw.txt"),
        expected.replace("./keep.txt\n", "./new\n")
    );
    assert_eq!(file(&t, "sub.txt"), "/s\n/s/app.c\n/s/trace.log\n");
    assert!(ctx.path().join("keep.txt").exists() && !ctx.path().join("new").exists());

    // Mounting an ignored path is an error, as if it did not exist (COPY's message).
    let bad = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=bind,source=secret,target=/s cat /s/key\n",
            0o644,
        ),
        (".dockerignore", "secret\n", 0o644),
        ("secret/key", "do not mount\n", 0o600),
    ]);
    let err = s.fails(&[
        "build",
        "--build-context",
        &bc,
        bad.path().to_str().unwrap(),
    ]);
    assert!(err.contains("\"secret\": not found"), "{err}");
}

#[test]
fn cache_mounts_are_seeded_from_a_stage_on_first_use() {
    let Some((s, bc)) = run_setup() else { return };
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox AS seed\n\
             RUN mkdir -p /deps/pkgs && echo v1 > /deps/pkgs/a && ln -s a /deps/pkgs/link \
             && ln /deps/pkgs/a /deps/pkgs/hard && chown 1000:1001 /deps/pkgs/a && chmod 0750 /deps/pkgs\n\
             FROM busybox\n\
             RUN --mount=type=cache,id=dl,target=/c,from=seed,source=/deps \
             cd /c/pkgs && ls | tr '\\n' ' ' > /first && stat -c '%a' . > /mode \
             && stat -c '%u:%g %h' a > /owner && readlink link > /link && echo added > b\n\
             RUN --mount=type=cache,id=dl,target=/c,from=seed,source=/deps ls /c/pkgs | tr '\\n' ' ' > /second\n\
             RUN --mount=type=cache,id=dl,target=/c ls -A /c | wc -l > /unseeded\n\
             RUN --mount=type=bind,from=seed,source=/deps/pkgs,target=/s ls /s | tr '\\n' ' ' > /stage\n",
            0o644,
        ),
    ]);
    let (_, out) = build_local(&s, &bc, ctx.path(), &[]);
    let t = dir_tree(out.path());
    // The first use sees a copy of the stage's /deps: modes, owners, links kept.
    assert_eq!(file(&t, "first"), "a hard link ");
    assert_eq!(file(&t, "mode"), "750\n");
    assert_eq!(file(&t, "owner"), "1000:1001 2\n");
    assert_eq!(file(&t, "link"), "a\n");
    // Later uses see the cache as the steps left it, not the seed again.
    assert_eq!(file(&t, "second"), "a b hard link ");
    // Without from=, the same id is another cache; the stage itself is untouched.
    assert_eq!(file(&t, "unseeded").trim(), "0");
    assert_eq!(file(&t, "stage"), "a hard link ");
    assert!(!t.contains_key("c"), "the cache mount reached the image");

    // A source that is not there fails the step.
    let bad = context(&[(
        "Dockerfile",
        "FROM busybox AS seed\nFROM busybox\n\
         RUN --mount=type=cache,target=/c,from=seed,source=/nope true\n",
        0o644,
    )]);
    let err = s.fails(&[
        "build",
        "--build-context",
        &bc,
        bad.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("RUN --mount=type=cache,target=/c,source=/nope: no such directory in the mount's source"),
        "{err}"
    );
}
