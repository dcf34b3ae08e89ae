//! Shell-word lexing and variable expansion, with the semantics of BuildKit's
//! `frontend/dockerfile/shell/lex.go`.
//!
//! Used by the instructions that expand (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
//! VOLUME WORKDIR ONBUILD-less flag values, heredoc bodies with unquoted delimiters),
//! never on RUN/CMD/ENTRYPOINT text. Depends on no other workspace crate.
