//! Data on stdout. A reader that goes away (`strata images | head -1`) ends the process
//! quietly with the status SIGPIPE gives (141), as it ends a C or Go program, instead of
//! the panic `println!` raises.

use std::io::Write;

/// Writes `args` to stdout and flushes; used through [`outln!`] and [`out!`].
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for data on stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for data on stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
