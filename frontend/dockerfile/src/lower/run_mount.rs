//! RUN --mount: bind, cache, tmpfs, secret and ssh mounts, with `from=` resolved to a
//! stage, a named context or an image.

use strata_graph::{CacheSharing, Input, Mount, MountKind};
use strata_instructions::{parse_mount, Instruction, MountType, Run, Sharing};

use super::{join_path, Lowering, StageState};
use crate::{LowerError, LowerErrorKind};

impl Lowering<'_> {
    pub(super) fn run_mounts(
        &mut self,
        st: &StageState,
        inst: &Instruction,
        run: &Run,
        inputs: &mut Vec<Input>,
    ) -> Result<Vec<Mount>, LowerError> {
        let span = inst.span;
        let mut mounts = Vec::new();
        for raw in &run.mounts {
            let spec = {
                let mut ex = self.expander(st, span);
                let mut err = None;
                let parsed = parse_mount(raw, &mut |v: &str| {
                    ex.word(v).map_err(|e| {
                        let msg = e.to_string();
                        err = Some(e);
                        msg
                    })
                });
                if let Some(e) = err {
                    return Err(e);
                }
                parsed.map_err(|m| LowerError::at(span, LowerErrorKind::Mount(m)))?
            };
            let cwd = st.cwd();
            let target = spec.target.as_deref().map(|t| {
                let p = join_path(&cwd, t);
                if p.len() > 1 {
                    p.trim_end_matches('/').to_string()
                } else {
                    p
                }
            });
            let mut input_for =
                |this: &mut Self, from: Option<&str>| -> Result<usize, LowerError> {
                    let input = match from {
                        Some(f) => this.source_ref(f, span, &st.platform.clone())?,
                        None => Input::root(this.context()),
                    };
                    inputs.push(input);
                    Ok(inputs.len() - 1)
                };
            let (input, kind) = match spec.kind {
                MountType::Bind => {
                    let i = input_for(self, spec.from.as_deref())?;
                    (
                        Some(i),
                        MountKind::Bind {
                            readonly: spec.readonly,
                        },
                    )
                }
                MountType::Cache => {
                    let i = match spec.from.as_deref() {
                        Some(f) => Some(input_for(self, Some(f))?),
                        None => None,
                    };
                    let sharing = match spec.sharing {
                        Sharing::Shared => CacheSharing::Shared,
                        Sharing::Private => CacheSharing::Private,
                        Sharing::Locked => CacheSharing::Locked,
                    };
                    (
                        i,
                        MountKind::Cache {
                            id: spec.id.clone().unwrap_or_default(),
                            sharing,
                            mode: spec.mode.unwrap_or(0o755),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                            readonly: spec.readonly,
                        },
                    )
                }
                MountType::Tmpfs => (None, MountKind::Tmpfs { size: spec.size }),
                MountType::Secret => (
                    None,
                    MountKind::Secret {
                        id: spec.id.clone().unwrap_or_default(),
                        env: spec.env.clone(),
                        required: spec.required,
                        mode: spec.mode.unwrap_or(0o400),
                        uid: spec.uid.unwrap_or(0),
                        gid: spec.gid.unwrap_or(0),
                    },
                ),
                MountType::Ssh => (
                    None,
                    MountKind::Ssh {
                        id: spec.id.clone().unwrap_or_else(|| "default".into()),
                        required: spec.required,
                        mode: spec.mode.unwrap_or(0o600),
                        uid: spec.uid.unwrap_or(0),
                        gid: spec.gid.unwrap_or(0),
                    },
                ),
            };
            mounts.push(Mount {
                target: target.unwrap_or_default(),
                input,
                source: spec.source.clone(),
                kind,
            });
        }
        Ok(mounts)
    }
}
