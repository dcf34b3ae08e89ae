//! Instruction errors as a table: Dockerfile text → the exact user-facing message and
//! the line it points at.

use strata_instructions::lint::{LintConfig, Linter};
use strata_instructions::parse_dockerfile;

fn error_of(src: &str) -> (usize, String) {
    let ast = match strata_parser::parse(src) {
        Ok(a) => a,
        Err(e) => return (e.line(), e.to_string()),
    };
    let mut lint = Linter::new(LintConfig::default());
    let e = parse_dockerfile(&ast, &mut lint).expect_err(src);
    (e.span.start, e.to_string())
}

#[test]
fn instruction_errors() {
    let cases: &[(&str, usize, &str)] = &[
        ("FROM scratch\nCOPPY a b\n", 2, "unknown instruction: COPPY (did you mean COPY?)"),
        ("FROM scratch\nFORM x\n", 2, "unknown instruction: FORM (did you mean FROM?)"),
        ("FROM scratch\nBOGUSWORD x\n", 2, "unknown instruction: BOGUSWORD"),
        ("RUN echo\n", 1, "no build stage in current context: RUN must follow FROM (only ARG may come before the first FROM)"),
        ("ARG A=1\n", 1, "the Dockerfile has no FROM instruction"),
        ("FROM a b\n", 1, "FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", 1, "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
        ("FROM a AS b\nFROM c AS B\n", 2, "duplicate stage name \"b\": first defined on line 1"),
        ("FROM --plat=x a\n", 1, "unknown flag: --plat (valid flags for FROM: --platform)"),
        ("FROM scratch\nCOPY a\n", 2, "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM scratch\nADD --link=maybe a b\n", 2, "expecting boolean value for flag --link, not: maybe"),
        ("FROM scratch\nCOPY --from a b\n", 2, "missing a value on flag: --from"),
        ("FROM scratch\nCOPY --checksum=x a b\n", 2, "unknown flag: --checksum (valid flags for COPY: --from, --chown, --chmod, --link, --parents, --exclude)"),
        ("FROM scratch\nCOPY --from=a --from=b x y\n", 2, "duplicate flag specified: --from"),
        ("FROM scratch\nRUN --network=bridge x\n", 2, "--network: unsupported network mode \"bridge\" (use default, none or host)"),
        ("FROM scratch\nRUN --security=root x\n", 2, "--security: unsupported security mode \"root\" (use sandbox or insecure)"),
        ("FROM scratch\nRUN --mount=type=cache x\n", 2, "cache mount requires a target"),
        ("FROM scratch\nRUN --mount=type=nfs,target=/x x\n", 2, "unsupported mount type \"nfs\" (use bind, cache, tmpfs, secret or ssh)"),
        ("FROM scratch\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
        ("FROM scratch\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM scratch\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM scratch\nONBUILD MAINTAINER x\n", 2, "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM scratch\nHEALTHCHECK FOO x\n", 2, "Unknown type \"FOO\" in HEALTHCHECK (try CMD)"),
        ("FROM scratch\nHEALTHCHECK --interval=10 CMD x\n", 2, "invalid duration \"10\" for --interval: use e.g. 30s, 1m30s, 500ms"),
        ("FROM scratch\nHEALTHCHECK --retries=-1 CMD x\n", 2, "--retries cannot be negative"),
        ("FROM scratch\nHEALTHCHECK --interval=1us CMD x\n", 2, "--interval cannot be less than 1ms"),
        ("FROM scratch\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
        ("FROM scratch\nSTOPSIGNAL a b\n", 2, "STOPSIGNAL requires exactly one argument"),
        ("FROM scratch\nUSER --x=1 root\n", 2, "unknown flag: --x (valid flags for USER: none)"),
        ("FROM scratch\nEXPOSE\n", 2, "EXPOSE requires at least one argument"),
    ];
    let mut failures = Vec::new();
    for (src, line, msg) in cases {
        let (got_line, got) = error_of(src);
        if got_line != *line || got != *msg {
            failures.push(format!(
                "{src:?}\n  want {line}: {msg}\n  got  {got_line}: {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_file_parses_into_stages() {
    let src = "ARG BASE=scratch\nFROM $BASE AS Build\nRUN --mount=type=cache,target=/c make\nCOPY --link --chmod=755 a /b\nfrom scratch\nCOPY --from=build /b /b\n";
    let ast = strata_parser::parse(src).unwrap();
    let mut lint = Linter::new(LintConfig::default());
    let df = parse_dockerfile(&ast, &mut lint).unwrap();
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.stages.len(), 2);
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(df.stages[0].instructions.len(), 2);
    assert_eq!(df.stage_by_ref("BUILD").unwrap().index, 0);
    assert_eq!(df.stage_by_ref("1").unwrap().index, 1);
    let rules: Vec<&str> = lint.warnings().iter().map(|w| w.rule.name).collect();
    assert!(rules.contains(&"StageNameCasing"), "{rules:?}");
    assert!(rules.contains(&"ConsistentInstructionCasing"), "{rules:?}");
}
