//! Generates completions/ (bash, zsh, fish) and man/ (certctl.1 and one page per
//! subcommand) from the clap definition, `certctl::cli::Cli`. Run it through
//! `scripts/gen-docs`; tests/it/docs.rs runs `generate` too and fails when the committed
//! files differ. The output depends on nothing but the clap definition and the version.

use std::fs;
use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

/// The directories this generator owns entirely: every file in them is generated.
pub const DIRS: [&str; 2] = ["completions", "man"];

/// Writes completions/ and man/ under `out`, creating them; files already there with
/// other names are left for the caller to remove.
pub fn generate(out: &Path) -> io::Result<()> {
    let completions = out.join("completions");
    let man = out.join("man");
    fs::create_dir_all(&completions)?;
    fs::create_dir_all(&man)?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = certctl::cli::Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "certctl", &completions)?;
    }
    // certctl.1, certctl-request.1, certctl-account-thumbprint.1, ...
    clap_mangen::generate_to(certctl::cli::Cli::command(), &man)?;
    Ok(())
}

#[allow(dead_code)] // tests/it/docs.rs includes this file for `generate` alone
fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: gen_docs OUT_DIR   (writes OUT_DIR/completions and OUT_DIR/man)");
        std::process::exit(2);
    };
    let out = Path::new(&out);
    if let Err(e) = regenerate(out) {
        eprintln!("gen_docs: {}: {e}", out.display());
        std::process::exit(1);
    }
}

/// Replaces the generated files under `out`: stale pages of removed subcommands go too.
#[allow(dead_code)]
fn regenerate(out: &Path) -> io::Result<()> {
    for dir in DIRS {
        let dir = out.join(dir);
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type()?.is_file() {
                    fs::remove_file(entry.path())?;
                }
            }
        }
    }
    generate(out)?;
    for dir in DIRS {
        let mut names: Vec<String> = fs::read_dir(out.join(dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        println!("{dir}/: {}", names.join(" "));
    }
    Ok(())
}
