//! RUN: the process (shell/exec form, heredoc scripts), its environment (image ENV,
//! stage ARGs, proxy args), user, working directory, network and security mode.

use strata_graph::{
    Exec, FileAction, FileOp, Input, Mount, MountKind, NetworkMode, Op, SecurityMode, VertexMeta,
};
use strata_instructions::{CommandLine, Instruction, Run};

use super::meta::{proxy_env, shell_of};
use super::{Lowering, StageState};
use crate::LowerError;

impl Lowering<'_> {
    pub(super) fn run(
        &mut self,
        st: &mut StageState,
        inst: &Instruction,
        run: &Run,
        step: usize,
    ) -> Result<(), LowerError> {
        let mut inputs = vec![st.root];
        let mut mounts = self.run_mounts(st, inst, run, &mut inputs)?;
        let args = match &run.command {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) if run.heredocs.is_empty() => {
                let mut v = shell_of(st);
                v.push(s.clone());
                v
            }
            CommandLine::Shell(s) => {
                self.heredoc_script(st, inst, step, run, s, &mut inputs, &mut mounts)
            }
        };

        // The process sees the image ENV, then the stage's ARGs that ENV does not shadow.
        let mut env = st.image.config.env.clone();
        let mut arg_env = Vec::new();
        for (k, v) in st.args.values() {
            let shadowed = env
                .iter()
                .any(|kv| kv.split_once('=').map(|(ek, _)| ek).unwrap_or(kv) == k);
            if !shadowed {
                arg_env.push(format!("{k}={v}"));
            }
        }
        env.extend(arg_env.iter().cloned());
        env.extend(proxy_env(&self.opts.build_args));
        if !env.iter().any(|kv| kv.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            );
        }

        let network = match run.network.as_deref() {
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            _ => NetworkMode::Default,
        };
        let security = match run.security.as_deref() {
            Some("insecure") => SecurityMode::Insecure,
            _ => SecurityMode::Sandbox,
        };
        let exec = Exec {
            args: args.clone(),
            env,
            cwd: st.cwd(),
            user: st.image.config.user.clone().unwrap_or_default(),
            network,
            security,
            mounts,
        };
        let name = self.vertex_name(st, step, inst);
        let meta = self.meta(st, name);
        let id = self.graph.add(Op::Exec(exec), inputs, meta);
        st.root = Input::root(id);

        // BuildKit's history form: `RUN |2 A=1 B=2 /bin/sh -c make # buildkit`.
        let mut created_by = String::from("RUN ");
        if !arg_env.is_empty() {
            created_by.push_str(&format!("|{} {} ", arg_env.len(), arg_env.join(" ")));
        }
        created_by.push_str(&args.join(" "));
        created_by.push_str(" # buildkit");
        Self::history(st, created_by, false);
        Ok(())
    }

    /// RUN with heredocs. A lone heredoc is the script: with a shebang it is written to a
    /// file and executed, otherwise it is given to the shell. Heredocs after a command
    /// (`python3 <<EOF`) are handed to the shell with their bodies, as written.
    #[allow(clippy::too_many_arguments)]
    fn heredoc_script(
        &mut self,
        st: &StageState,
        inst: &Instruction,
        step: usize,
        run: &Run,
        cmd: &str,
        inputs: &mut Vec<Input>,
        mounts: &mut Vec<Mount>,
    ) -> Vec<String> {
        let lone = run.heredocs.len() == 1 && {
            let word = cmd.trim().trim_start_matches("<<").trim_start_matches('-');
            let word = word.trim_matches(|c| c == '"' || c == '\'');
            word == run.heredocs[0].name
        };
        let mut args = shell_of(st);
        if lone {
            let doc = &run.heredocs[0];
            if doc.content.starts_with("#!") {
                let dir = "/dev/pipes";
                let file = self.graph.add(
                    Op::File(FileOp {
                        base: None,
                        actions: vec![FileAction::Mkfile {
                            path: format!("/{}", doc.name),
                            mode: 0o755,
                            data: doc.content.clone(),
                            owner: None,
                        }],
                    }),
                    vec![],
                    VertexMeta {
                        name: format!("{} (script file)", self.vertex_name(st, step, inst)),
                        ..Default::default()
                    },
                );
                inputs.push(Input::root(file));
                mounts.push(Mount {
                    target: dir.into(),
                    input: Some(inputs.len() - 1),
                    source: None,
                    kind: MountKind::Bind { readonly: true },
                });
                return vec![format!("{dir}/{}", doc.name)];
            }
            args.push(doc.content.clone());
            return args;
        }
        let mut script = cmd.to_string();
        for doc in &run.heredocs {
            script.push('\n');
            script.push_str(&doc.content);
            if !doc.content.is_empty() && !doc.content.ends_with('\n') {
                script.push('\n');
            }
            script.push_str(&doc.name);
        }
        args.push(script);
        args
    }
}
