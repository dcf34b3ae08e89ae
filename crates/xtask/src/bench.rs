//! `cargo xtask bench`: figures, not assertions. Each benchmark prints its measurement,
//! its target and the ratio; nothing here fails a build.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use strata_dockerfile::{lower, LowerOptions, NoImages};

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        None | Some("frontend") => frontend(),
        Some("buildkit") => crate::bench_buildkit::run(),
        Some("run") => crate::bench_run::run(),
        Some("registry") => crate::bench_registry::run(),
        Some("cache") => crate::bench_cache::run(),
        Some(other) => {
            anyhow::bail!("unknown benchmark {other:?} (frontend, buildkit, run, registry, cache)")
        }
    }
}

/// A Dockerfile of `n` instructions over 20 stages of 250, using every instruction kind,
/// and a final stage that copies from each, so every stage is reachable. With `chained`,
/// each stage is `FROM` the previous one (ENV and history accumulate: the worst case);
/// otherwise stages come in pairs (`FROM base`, then `FROM` the first of the pair).
pub fn generate(n: usize, chained: bool) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=scratch\nARG VERSION=1.0\n");
    let per_stage = 250;
    let stages = n / per_stage;
    let mut count = 2 + stages + 2; // global ARGs, final FROM + COPYs + CMD
    let mut stage = 0;
    while count < n {
        if stage == 0 {
            writeln!(s, "FROM ${{BASE}} AS s{stage}").unwrap();
        } else if chained || stage % 2 == 1 {
            writeln!(s, "FROM s{} AS s{stage}", stage - 1).unwrap();
        } else {
            writeln!(s, "FROM ${{BASE}} AS s{stage}").unwrap();
        }
        writeln!(s, "ARG VERSION").unwrap();
        count += 2;
        for i in 0..per_stage {
            if count >= n {
                break;
            }
            count += 1;
            match i % 10 {
                0 => writeln!(s, "ENV K{i}=v{i}-$VERSION P{i}=\"a b\"").unwrap(),
                1 => writeln!(
                    s,
                    "RUN --mount=type=cache,target=/c{i} echo step {i} && \\\n    echo more"
                )
                .unwrap(),
                2 => writeln!(s, "COPY --chown=1000:1000 src/file{i}.txt /app/{i}/").unwrap(),
                3 => writeln!(s, "LABEL l{i}=\"${{VERSION}}\"").unwrap(),
                4 => writeln!(s, "WORKDIR /w/{i}").unwrap(),
                5 => writeln!(s, "RUN <<EOF\necho heredoc {i}\necho $VERSION\nEOF").unwrap(),
                6 => writeln!(s, "EXPOSE {}", 1000 + i).unwrap(),
                7 if stage > 0 => writeln!(s, "COPY --from=s0 /etc/f{i} /etc/").unwrap(),
                7 => writeln!(s, "VOLUME /v{i}").unwrap(),
                8 => writeln!(s, "USER u{i}").unwrap(),
                _ => writeln!(s, "ADD --link src/a{i}.tar /opt/").unwrap(),
            }
        }
        stage += 1;
    }
    s.push_str("FROM ${BASE}\n");
    for k in 0..stage {
        writeln!(s, "COPY --from=s{k} /app /s{k}/").unwrap();
    }
    writeln!(s, "CMD [\"/bin/app\"]").unwrap();
    s
}

fn time<F: FnMut()>(iterations: usize, mut f: F) -> (Duration, Duration) {
    f(); // warm-up
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    (samples[0], samples[samples.len() / 2])
}

fn frontend() -> Result<()> {
    frontend_case("paired stages", false)?;
    frontend_case("chained stages (worst case)", true)
}

fn frontend_case(label: &str, chained: bool) -> Result<()> {
    let src = generate(5000, chained);
    let instructions = strata_parser::parse_bytes(src.as_bytes())?.nodes.len();
    let bytes = src.as_bytes();
    let opts = LowerOptions::default();
    let vertices = lower(bytes, &opts, &NoImages)?.graph.len();
    let (pmin, pmed) = time(30, || {
        strata_parser::parse_bytes(bytes).unwrap();
    });
    let (lmin, lmed) = time(30, || {
        lower(bytes, &opts, &NoImages).unwrap();
    });
    let target = Duration::from_millis(20);
    println!(
        "frontend, {label}: {instructions} instructions, {} KiB, {vertices} vertices",
        bytes.len() / 1024
    );
    println!(
        "  parse            min {:>8.2?}  median {:>8.2?}",
        pmin, pmed
    );
    println!(
        "  parse + lower    min {:>8.2?}  median {:>8.2?}  target < {:?}  ratio {:.2}x of target",
        lmin,
        lmed,
        target,
        lmed.as_secs_f64() / target.as_secs_f64()
    );
    Ok(())
}
