//! completions/ and man/ are generated from the clap definition and committed: this
//! regenerates them into a temp dir and fails, naming each difference, when the committed
//! files are not what `scripts/gen-docs` would write now.

#[path = "../../examples/gen_docs.rs"]
mod gen_docs;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn committed_completions_and_man_pages_are_current() {
    let fresh = tempfile::tempdir().unwrap();
    gen_docs::generate(fresh.path()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for dir in gen_docs::DIRS {
        let want = files(&fresh.path().join(dir));
        let have = files(&root.join(dir));
        assert!(!want.is_empty(), "the generator wrote nothing into {dir}/");
        for (name, bytes) in &want {
            match have.get(name) {
                None => problems.push(format!("{dir}/{name} is missing")),
                Some(old) if old != bytes => problems.push(format!("{dir}/{name} is out of date")),
                Some(_) => {}
            }
        }
        for name in have.keys().filter(|n| !want.contains_key(*n)) {
            problems.push(format!("{dir}/{name} is no longer generated"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nrun scripts/gen-docs and commit completions/ and man/",
        problems.join("\n")
    );
}

#[test]
fn every_subcommand_has_a_man_page_and_an_example() {
    use clap::CommandFactory;
    let cli = certctl::cli::Cli::command();
    let fresh = tempfile::tempdir().unwrap();
    gen_docs::generate(fresh.path()).unwrap();
    let pages = files(&fresh.path().join("man"));
    let mut missing = Vec::new();
    let mut stack: Vec<(String, &clap::Command)> = cli
        .get_subcommands()
        .map(|c| (format!("certctl-{}", c.get_name()), c))
        .collect();
    while let Some((page, cmd)) = stack.pop() {
        if !pages.contains_key(&format!("{page}.1")) {
            missing.push(format!("man page {page}.1"));
        }
        let help = cmd
            .get_long_about()
            .or(cmd.get_about())
            .map(|s| s.to_string())
            .unwrap_or_default();
        if !help.contains("Example") {
            missing.push(format!("an example in the help of {page}"));
        }
        stack.extend(
            cmd.get_subcommands()
                .map(|c| (format!("{page}-{}", c.get_name()), c)),
        );
    }
    assert!(pages.contains_key("certctl.1"));
    assert!(missing.is_empty(), "missing: {}", missing.join(", "));
}
