//! A real-world multi-stage build: a Debian stage installs gcc with apt (from the
//! Debian mirror, over the host's network) and compiles a C program, a busybox stage
//! copies the binary and runs it. The Debian base image (`debootstrap --variant=minbase
//! bookworm`) is made once per machine and cached under the target directory; the apt
//! step downloads gcc on every run (minutes on a slow mirror), so the test prints how
//! long each part took.

mod common;

use std::time::Instant;

use common::*;

const HELLO_C: &str = r#"#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from %s, built by gcc %d.%d\n", argc > 1 ? argv[1] : "nowhere",
           __GNUC__, __GNUC_MINOR__);
    return 0;
}
"#;

#[test]
fn a_debian_stage_compiles_c_with_gcc_for_a_busybox_stage() {
    let started = Instant::now();
    if !is_root() {
        skip("RUN needs root (overlay mounts and runc)");
        return;
    }
    if tool("runc", "runc").is_none() {
        return;
    }
    let Some(busybox) = busybox_layout() else {
        return;
    };
    let Some(debian) = debian_layout() else {
        return;
    };
    let base_ready = started.elapsed();
    let s = Strata::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM debian AS build\n\
             RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
             && rm -rf /var/lib/apt/lists/*\n\
             COPY hello.c /src/\n\
             RUN gcc -static -O2 -Wall -o /hello /src/hello.c && /hello debian > /built\n\
             FROM busybox\n\
             COPY --from=build /hello /usr/local/bin/hello\n\
             COPY --from=build /built /built\n\
             RUN hello busybox > /greeting\n",
            0o644,
        ),
        ("hello.c", HELLO_C, 0o644),
    ]);
    let out = tempfile::tempdir().unwrap();
    let b = s.build(
        ctx.path(),
        &[
            "--build-context",
            &format!("debian=oci-layout://{}:bookworm", debian.display()),
            "--build-context",
            &busybox_context("busybox", &busybox),
            "-o",
            &format!("type=local,dest={}", out.path().display()),
        ],
    );
    let t = dir_tree(out.path());
    let text = |p: &str| match &t.get(p).unwrap_or_else(|| panic!("{p} missing")).kind {
        Kind::File(c) => String::from_utf8_lossy(c).into_owned(),
        other => panic!("{p} is {other:?}"),
    };
    // Bookworm's gcc is 12; the static binary runs in both stages.
    assert_eq!(text("built"), "hello from debian, built by gcc 12.2\n");
    assert_eq!(text("greeting"), "hello from busybox, built by gcc 12.2\n");
    let hello = &t["usr/local/bin/hello"];
    assert_eq!(hello.mode & 0o111, 0o111, "{hello:?}");
    assert!(
        b.executed().iter().any(|n| n.contains("apt-get install")),
        "{:?}",
        b.executed()
    );
    eprintln!(
        "debian multi-stage build: base image ready after {:.1?}, whole test {:.1?}",
        base_ready,
        started.elapsed()
    );
}
