//! COPY and ADD: sources from the context, a stage, a named context, an image, a URL,
//! a git repository or a heredoc; `--chown`, `--chmod`, `--link`, `--parents`,
//! `--exclude`, `--checksum`, `--keep-git-dir`, `--unpack`.

use strata_digest::Digest;
use strata_graph::{
    Chmod, Chown, Copy, FileAction, FileOp, IdOrName, Input, Merge, Op, Source, VertexMeta,
};
use strata_instructions::lint;
use strata_instructions::{AddCopy, Instruction};
use strata_patternmatcher::PatternMatcher;

use super::meta::parse_chown_lenient;
use super::{join_path, Lowering, StageState};
use crate::{LowerError, LowerErrorKind};

/// What one source word of ADD/COPY is.
enum SourceKind {
    Path(String),
    Heredoc(usize),
    Url(String),
    Git(String),
}

impl Lowering<'_> {
    pub(super) fn copy(
        &mut self,
        st: &mut StageState,
        inst: &Instruction,
        ac: &AddCopy,
        is_add: bool,
        step: usize,
    ) -> Result<(), LowerError> {
        let span = inst.span;
        let cmd = if is_add { "ADD" } else { "COPY" };
        let err = |k| LowerError::at(span, k);

        // Expand everything in the stage scope first.
        let (sources, dest, from, chown, chmod, exclude, checksum) = {
            let mut ex = self.expander(st, span);
            let mut sources = Vec::new();
            for s in &ac.sources {
                if let Some(i) = heredoc_index(s, ac) {
                    sources.push(SourceKind::Heredoc(i));
                    continue;
                }
                let v = ex.word(s)?;
                sources.push(if is_add && is_git(&v) {
                    SourceKind::Git(v)
                } else if is_add && (v.starts_with("http://") || v.starts_with("https://")) {
                    SourceKind::Url(v)
                } else {
                    SourceKind::Path(v)
                });
            }
            let dest = ex.word(&ac.dest)?;
            let from = ac.from.as_deref().map(|f| ex.word(f)).transpose()?;
            let chown = ac.chown.as_deref().map(|c| ex.word(c)).transpose()?;
            let chmod = ac.chmod.as_deref().map(|c| ex.word(c)).transpose()?;
            let mut exclude = Vec::new();
            for e in &ac.exclude {
                exclude.push(ex.word(e)?);
            }
            let checksum = ac.checksum.as_deref().map(|c| ex.word(c)).transpose()?;
            (sources, dest, from, chown, chmod, exclude, checksum)
        };

        let cwd = st.cwd();
        let several = sources.len() > 1;
        let mut dest_abs = join_path(&cwd, &dest);
        if several && !dest_abs.ends_with('/') {
            // Docker: with several sources the destination must be a directory.
            return Err(err(LowerErrorKind::Other(format!(
                "When using {cmd} with more than one source file, the destination must be a directory and end with a /"
            ))));
        }
        if dest == "." || dest.ends_with("/.") {
            dest_abs = format!("{}/", dest_abs.trim_end_matches('/'));
        }
        let chown = match chown {
            Some(c) => Some(parse_copy_chown(&c).ok_or_else(|| err(LowerErrorKind::Chown(c)))?),
            None => None,
        };
        let chmod = chmod
            .map(|c| parse_chmod(&c).ok_or(LowerErrorKind::Chmod(c)))
            .transpose()
            .map_err(err)?;
        let checksum = match checksum {
            None => None,
            Some(c) => {
                if sources
                    .iter()
                    .any(|s| matches!(s, SourceKind::Path(_) | SourceKind::Heredoc(_)))
                {
                    let first = ac.sources.first().cloned().unwrap_or_default();
                    return Err(err(LowerErrorKind::ChecksumSource(first)));
                }
                Some(
                    c.parse::<Digest>()
                        .map_err(|_| err(LowerErrorKind::Checksum(c)))?,
                )
            }
        };

        // Where path sources come from.
        let platform = st.platform.clone();
        let path_input = if sources.iter().any(|s| matches!(s, SourceKind::Path(_))) {
            Some(match &from {
                Some(f) => self.source_ref(f, span, &platform)?,
                None => Input::root(self.context()),
            })
        } else {
            None
        };
        if from.is_none() {
            self.check_ignored(&sources, cmd, span);
        }

        // Inputs: 0 = the stage root unless --link (then the copy goes onto scratch).
        let mut inputs: Vec<Input> = if ac.link { Vec::new() } else { vec![st.root] };
        let base = if ac.link { None } else { Some(0) };
        let mut actions = Vec::new();
        let copy = |input: usize,
                    srcs: Vec<String>,
                    dest: String,
                    unpack: bool,
                    dir_contents_only: bool| Copy {
            input,
            sources: srcs,
            dest,
            chown: chown.clone(),
            chmod: chmod.clone(),
            dir_contents_only,
            follow_symlinks: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            create_dest_path: true,
            unpack,
            parents: ac.parents,
            exclude: exclude.clone(),
        };
        let paths: Vec<String> = sources
            .iter()
            .filter_map(|s| match s {
                SourceKind::Path(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        if let Some(input) = path_input {
            inputs.push(input);
            let unpack = is_add && ac.unpack.unwrap_or(true);
            actions.push(FileAction::Copy(copy(
                inputs.len() - 1,
                paths,
                dest_abs.clone(),
                unpack,
                true,
            )));
        }
        for s in &sources {
            match s {
                SourceKind::Path(_) => {}
                SourceKind::Heredoc(i) => {
                    let doc = &ac.heredocs[*i];
                    let data = if doc.expand {
                        let mut ex = self.expander(st, span);
                        expand_heredoc(&mut ex, &doc.content)?
                    } else {
                        doc.content.clone()
                    };
                    let path = if dest_abs.ends_with('/') {
                        format!("{dest_abs}{}", doc.name)
                    } else {
                        dest_abs.clone()
                    };
                    let mode = match &chmod {
                        Some(Chmod::Octal(m)) => *m,
                        _ => 0o644,
                    };
                    actions.push(FileAction::Mkfile {
                        path,
                        mode,
                        data,
                        owner: chown.clone(),
                    });
                }
                SourceKind::Url(url) => {
                    let filename = url_filename(url);
                    let id = self.graph.add(
                        Op::Source(Source::Http {
                            url: url.clone(),
                            checksum,
                            filename: Some(filename.clone()),
                        }),
                        vec![],
                        VertexMeta {
                            name: format!("[{}{}/{}] ADD {url}", st.prefix, step, st.total),
                            ..Default::default()
                        },
                    );
                    inputs.push(Input::root(id));
                    let target = if dest_abs.ends_with('/') {
                        format!("{dest_abs}{filename}")
                    } else {
                        dest_abs.clone()
                    };
                    let unpack = ac.unpack.unwrap_or(false);
                    actions.push(FileAction::Copy(copy(
                        inputs.len() - 1,
                        vec![format!("/{filename}")],
                        target,
                        unpack,
                        true,
                    )));
                }
                SourceKind::Git(url) => {
                    let (remote, reference, subdir) = split_git(url);
                    let id = self.graph.add(
                        Op::Source(Source::Git {
                            remote,
                            reference,
                            subdir,
                            keep_git_dir: ac.keep_git_dir,
                        }),
                        vec![],
                        VertexMeta {
                            name: format!("[{}{}/{}] ADD {url}", st.prefix, step, st.total),
                            ..Default::default()
                        },
                    );
                    inputs.push(Input::root(id));
                    actions.push(FileAction::Copy(copy(
                        inputs.len() - 1,
                        vec!["/".into()],
                        dest_abs.clone(),
                        false,
                        true,
                    )));
                }
            }
        }

        let name = self.vertex_name(st, step, inst);
        let meta = self.meta(st, name);
        let file = self
            .graph
            .add(Op::File(FileOp { base, actions }), inputs, meta.clone());
        st.root = if ac.link {
            let merged =
                self.graph
                    .add(Op::Merge(Merge {}), vec![st.root, Input::root(file)], meta);
            Input::root(merged)
        } else {
            Input::root(file)
        };
        Self::history(st, format!("{} # buildkit", inst.original.trim()), false);
        Ok(())
    }

    /// CopyIgnoredFile (experimental): a literal source the .dockerignore excludes.
    fn check_ignored(&mut self, sources: &[SourceKind], cmd: &str, span: strata_parser::Span) {
        if self.opts.dockerignore.is_empty() || !self.lint.config.enabled(&lint::COPY_IGNORED_FILE)
        {
            return;
        }
        let Ok(m) = PatternMatcher::new(&self.opts.dockerignore) else {
            return;
        };
        for s in sources {
            if let SourceKind::Path(p) = s {
                let rel = p
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .trim_end_matches('/');
                if !rel.is_empty() && !rel.contains(['*', '?', '[']) && m.matches(rel) {
                    self.lint.warn(
                        &lint::COPY_IGNORED_FILE,
                        span,
                        format!("Attempting to {cmd} file {p:?} that is excluded by .dockerignore"),
                    );
                }
            }
        }
    }
}

/// A source word naming one of the instruction's heredocs (`<<EOF`, `<<-"EOF"`).
fn heredoc_index(word: &str, ac: &AddCopy) -> Option<usize> {
    let w = word.strip_prefix("<<")?;
    let w = w.strip_prefix('-').unwrap_or(w);
    let w = w.trim_matches(|c| c == '"' || c == '\'');
    ac.heredocs.iter().position(|h| h.name == w)
}

/// Heredoc bodies with unquoted delimiters expand variables but keep quotes.
fn expand_heredoc(
    ex: &mut crate::scope::Expander<'_>,
    content: &str,
) -> Result<String, LowerError> {
    let lexer = ex.lexer.clone().raw_quotes(true).skip_process_quotes(true);
    lexer
        .process_word(content, &ex.env)
        .map_err(|e| LowerError::at(ex.span, LowerErrorKind::Expand(e)))
}

fn is_git(s: &str) -> bool {
    if s.starts_with("git@") || s.starts_with("git://") || s.starts_with("ssh://") {
        return true;
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        let before_fragment = s.split('#').next().unwrap_or(s);
        return before_fragment.ends_with(".git");
    }
    false
}

/// `URL#ref:subdir` → (URL, ref, subdir).
fn split_git(url: &str) -> (String, Option<String>, Option<String>) {
    match url.split_once('#') {
        None => (url.to_string(), None, None),
        Some((remote, frag)) => {
            let (r, sub) = match frag.split_once(':') {
                Some((r, s)) => (r, Some(s.to_string()).filter(|s| !s.is_empty())),
                None => (frag, None),
            };
            (
                remote.to_string(),
                Some(r.to_string()).filter(|r| !r.is_empty()),
                sub,
            )
        }
    }
}

/// The last path segment of a URL, or `__unnamed__` as BuildKit names a URL without one.
fn url_filename(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query.splitn(4, '/').nth(3).unwrap_or("");
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("__unnamed__")
        .to_string()
}

/// `755`, `0644` (octal) or `u+x,g-w,o=r` (symbolic, validated here, applied per file).
fn parse_chmod(s: &str) -> Option<Chmod> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return u32::from_str_radix(s, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Chmod::Octal);
    }
    let ok = s.split(',').all(|clause| {
        let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        !ops.is_empty()
            && ops.split_inclusive(['+', '-', '=']).count() > 0
            && ops.starts_with(['+', '-', '='])
            && ops.chars().all(|c| "+-=rwxXst".contains(c))
    });
    ok.then(|| Chmod::Symbolic(s.to_string()))
}

/// `--chown=user[:group]`. As BuildKit, `:group` leaves the user root and `user:` is
/// `user` (an empty name resolves to nothing); empty values and more than one `:` are
/// refused.
fn parse_copy_chown(spec: &str) -> Option<Chown> {
    if spec.matches(':').count() > 1 {
        return None;
    }
    let spec = spec.strip_suffix(':').unwrap_or(spec);
    match spec.strip_prefix(':') {
        Some("") => None,
        Some(group) => Some(Chown {
            user: IdOrName::Id(0),
            group: Some(parse_chown_lenient(group).user),
        }),
        None if spec.is_empty() => None,
        None => Some(parse_chown_lenient(spec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_forms() {
        let id = |n| IdOrName::Id(n);
        let name = |s: &str| IdOrName::Name(s.into());
        let chown = |user, group| Some(Chown { user, group });
        assert_eq!(parse_copy_chown("1:2"), chown(id(1), Some(id(2))));
        assert_eq!(parse_copy_chown("app"), chown(name("app"), None));
        assert_eq!(
            parse_copy_chown("app:staff"),
            chown(name("app"), Some(name("staff")))
        );
        assert_eq!(
            parse_copy_chown(":staff"),
            chown(id(0), Some(name("staff")))
        );
        assert_eq!(parse_copy_chown(":50"), chown(id(0), Some(id(50))));
        assert_eq!(parse_copy_chown("app:"), chown(name("app"), None));
        for bad in ["", ":", "a:b:c", "::"] {
            assert_eq!(parse_copy_chown(bad), None, "{bad}");
        }
    }

    #[test]
    fn chmod_forms() {
        assert_eq!(parse_chmod("755"), Some(Chmod::Octal(0o755)));
        assert_eq!(parse_chmod("0644"), Some(Chmod::Octal(0o644)));
        assert_eq!(
            parse_chmod("u+x,g-w"),
            Some(Chmod::Symbolic("u+x,g-w".into()))
        );
        assert_eq!(parse_chmod("a=rX"), Some(Chmod::Symbolic("a=rX".into())));
        for bad in ["", "999", "u", "u+q", "x+r", "77777"] {
            assert_eq!(parse_chmod(bad), None, "{bad}");
        }
    }

    #[test]
    fn git_and_url_sources() {
        assert!(is_git("https://github.com/moby/buildkit.git#v0.10.1"));
        assert!(is_git("git@github.com:moby/buildkit.git"));
        assert!(!is_git("https://example.com/file.tar.gz"));
        assert_eq!(
            split_git("https://h/r.git#main:docs"),
            (
                "https://h/r.git".into(),
                Some("main".into()),
                Some("docs".into())
            )
        );
        assert_eq!(
            url_filename("https://example.com/a/b.tar.gz?x=1"),
            "b.tar.gz"
        );
        assert_eq!(url_filename("https://example.com/"), "__unnamed__");
    }
}
