//! Questions asked on the terminal: `[y/N]` read as a whole line from stdin (bounded), the
//! question on stderr. Callers decide whether there is a terminal to ask on.

use std::io::{BufRead, Read};

/// Asks `question [y/N]` and reads one line: `y` or `yes` (any case) is yes; anything else,
/// and end of input, is no.
pub fn yes_no(question: &str) -> std::io::Result<bool> {
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    let stdin = std::io::stdin().lock();
    stdin.take(1024).read_line(&mut line)?;
    if line.is_empty() {
        eprintln!();
    }
    Ok(is_yes(&line))
}

fn is_yes(line: &str) -> bool {
    let answer = line.trim();
    answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_or_yes_is_yes() {
        for yes in ["y\n", "Y\n", "yes\n", "YES\r\n", " yEs "] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "no\n", "yess\n", "y e s\n", "ok\n"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
