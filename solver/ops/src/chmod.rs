//! `--chmod=u+x,g-w,o=r` applied to one file's mode (chmod(1) symbolic notation).

/// Applies `spec` to `mode` (permission bits). `X` adds execute only for directories
/// or files that already have an execute bit.
pub fn apply_symbolic(spec: &str, mode: u32, is_dir: bool) -> u32 {
    let mut mode = mode & 0o7777;
    for clause in spec.split(',') {
        let who_len = clause.find(['+', '-', '=']).unwrap_or(clause.len());
        let who = &clause[..who_len];
        let mut mask = 0;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => 0,
            };
        }
        if who.is_empty() {
            mask = 0o7777;
        }
        let mut rest = &clause[who_len..];
        while let Some(op) = rest.chars().next() {
            let perms_len = rest[1..]
                .find(['+', '-', '='])
                .map(|i| i + 1)
                .unwrap_or(rest.len());
            let perms = &rest[1..perms_len];
            let had_exec = mode & 0o111 != 0;
            let mut bits = 0;
            for p in perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || had_exec => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            let bits = bits & mask;
            mode = match op {
                '+' => mode | bits,
                '-' => mode & !bits,
                '=' => (mode & !(mask & 0o777)) | bits,
                _ => mode,
            };
            rest = &rest[perms_len..];
        }
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::apply_symbolic;

    #[test]
    fn symbolic_modes() {
        assert_eq!(apply_symbolic("u+x", 0o644, false), 0o744);
        assert_eq!(apply_symbolic("g-w,o-r", 0o664, false), 0o640);
        assert_eq!(apply_symbolic("a=r", 0o755, false), 0o444);
        assert_eq!(apply_symbolic("go=", 0o755, false), 0o700);
        assert_eq!(apply_symbolic("a+X", 0o644, false), 0o644);
        assert_eq!(apply_symbolic("a+X", 0o644, true), 0o755);
        assert_eq!(apply_symbolic("a+X", 0o744, false), 0o755);
        assert_eq!(apply_symbolic("+x", 0o600, false), 0o711);
        assert_eq!(apply_symbolic("u+s", 0o755, false), 0o4755);
        assert_eq!(apply_symbolic("u+rw-x", 0o755, false), 0o655);
    }
}
