//! `.dockerignore` patterns with Docker's semantics (moby/patternmatcher), which are not
//! gitignore's: patterns are anchored at the context root, `**` matches any number of
//! path segments, `!` re-includes, the last matching pattern wins, and a path is excluded
//! when it or one of its parents matches.
//!
//! Shared by the frontend (lint rule CopyIgnoredFile, local source selectors) and the
//! solver (context transfer). Depends on no other workspace crate.
