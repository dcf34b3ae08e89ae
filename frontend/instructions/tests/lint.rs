//! Parse-time lint rules: each case is a Dockerfile and the exact warnings it produces.

use strata_instructions::lint::{LintConfig, Linter};
use strata_instructions::parse_dockerfile;

fn warnings(src: &str) -> Vec<String> {
    let ast = strata_parser::parse(src).unwrap();
    let mut lint = Linter::new(LintConfig::from_directive(ast.directives.check.as_ref()));
    parse_dockerfile(&ast, &mut lint).unwrap();
    lint.into_warnings()
        .iter()
        .map(|w| format!("{}: {}: {}", w.span.start, w.rule.name, w.message))
        .collect()
}

#[test]
fn parse_time_rules() {
    let cases: &[(&str, &[&str])] = &[
        ("FROM scratch AS Build\n", &["1: StageNameCasing: Stage name 'Build' should be lowercase"]),
        ("FROM scratch as build\n", &["1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match"]),
        ("from scratch AS build\n", &["1: FromAsCasing: 'AS' and 'from' keywords' casing do not match"]),
        ("FROM scratch\nrun echo\nCOPY a b\n", &["2: ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase)"]),
        ("FROM scratch AS scratch\n", &["1: ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\""]),
        ("FROM scratch\nCMD echo hi\n", &["2: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"]),
        ("FROM scratch\nENTRYPOINT [\"a\"]\nCMD [\"b\"]\n", &[]),
        ("FROM scratch\nMAINTAINER me\n", &["2: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label"]),
        ("FROM scratch\nENV A 1\n", &["2: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format"]),
        ("FROM scratch\nARG API_KEY\nENV PUBLIC_KEY=1 MY_PASSWORD=x\n", &[
            "2: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"API_KEY\")",
            "3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"MY_PASSWORD\")",
        ]),
        ("FROM scratch\nCMD [\"a\"]\nCMD [\"b\"]\n", &["2: MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used"]),
        ("FROM scratch\nRUN a \\\n\n  b\n", &["4: NoEmptyContinuation: Empty continuation line"]),
        ("# check=skip=JSONArgsRecommended\nFROM scratch\nCMD echo hi\n", &[]),
        ("# check=skip=all\nFROM scratch AS Build\nCMD echo hi\n", &[]),
    ];
    let mut failures = Vec::new();
    for (src, want) in cases {
        let got = warnings(src);
        if got != *want {
            failures.push(format!("{src:?}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
