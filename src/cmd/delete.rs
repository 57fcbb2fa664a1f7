//! `certctl delete NAME`: stop managing a certificate without contacting its CA; its state
//! directory and bundle move to <state-dir>/archive/, nothing is destroyed. Also holds the
//! confirmation shared with `revoke`: ask on a terminal, `--yes` skips, and with no terminal
//! and no `--yes` refuse (exit 2) before anything is changed.

use std::io::IsTerminal;

use anyhow::{anyhow, bail};

use crate::cli::DeleteArgs;
use crate::cmd::list::not_managed;
use crate::cmd::request::{date, lock_wait, now};
use crate::error::BadInput;
use crate::settings::{CertName, Global};
use crate::store::{Inspection, Store};

pub fn run(global: &Global, args: DeleteArgs) -> anyhow::Result<()> {
    // 1. a certificate by that name (a damaged one too: delete is how it gets cleared away)
    let name = CertName::parse(&args.name).map_err(BadInput::new)?;
    let store = Store::new(&global.state_dir, &global.ssl_dir);
    if !store.manages(&name) {
        return Err(not_managed(global, &name));
    }

    // 2. confirmation; answering no changes nothing
    let intro = format!(
        "certctl will stop managing this certificate (without revoking it) and move its files \
         and bundle to {}:",
        global.state_dir.join("archive").display()
    );
    let summary = describe(&store.inspect(&name), now());
    if !confirm(args.yes, "delete", &name, &format!("{intro}\n{summary}"))? {
        crate::log::info(format_args!("delete cancelled; nothing changed"));
        return Ok(());
    }

    // 3. under the lock, archive it
    let _lock = store.lock(lock_wait())?;
    if !store.manages(&name) {
        bail!("{name} was removed by another certctl while this one waited; nothing done");
    }
    let folder = store.archive(&name, true, now())?;
    crate::log::info(format_args!(
        "{name}: no longer managed; its files and bundle are in {}",
        folder.display()
    ));
    Ok(())
}

/// Whether to go ahead with `verb` on `name`: true with `yes`; otherwise shows `summary`
/// and asks `[y/N]` on the terminal. With no terminal to ask on (stdin or stderr is not
/// one) it refuses with bad input naming --yes, so that nothing is changed.
pub fn confirm(yes: bool, verb: &str, name: &CertName, summary: &str) -> anyhow::Result<bool> {
    let question = format!("{} {name}?", capitalized(verb));
    confirm_action(
        yes,
        &format!("certctl {verb} {name}"),
        verb,
        &question,
        summary,
    )
}

/// Asks `question` after showing `summary`, on a terminal only; `yes` answers it. With no
/// terminal and no `yes`: bad input naming --yes, so nothing is ever done unasked.
pub fn confirm_action(
    yes: bool,
    command: &str,
    verb: &str,
    question: &str,
    summary: &str,
) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(BadInput::new(format!(
            "`{command}` needs a confirmation and there is no terminal to ask on; \
             pass --yes to {verb} without asking (nothing was changed)"
        ))
        .into());
    }
    eprintln!("{summary}");
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| anyhow!("reading the answer: {e}; nothing was changed"))
}

/// What a person should see before saying yes: one `label  value` line per fact.
pub fn describe(i: &Inspection, now: i64) -> String {
    let mut lines: Vec<(&str, String)> = vec![("name", i.name.to_string())];
    if let Some(s) = &i.settings {
        lines.push(("domains", crate::cmd::request::join(&s.domains)));
    }
    if let Some(c) = &i.info {
        lines.push(("serial", c.serial.clone()));
        let left = if c.not_after <= now {
            "expired".to_owned()
        } else {
            format!("{} days left", (c.not_after - now).div_euclid(86_400))
        };
        lines.push(("expires", format!("{} ({left})", date(c.not_after))));
    }
    if let Some(s) = &i.settings {
        lines.push(("CA", s.server.to_string()));
    }
    lines.push((
        "bundle",
        if i.bundle_exists {
            i.bundle.display().to_string()
        } else {
            format!("{} (not there)", i.bundle.display())
        },
    ));
    if !i.problems.is_empty() {
        lines.push(("damaged", i.problems.join("; ")));
    }
    lines
        .iter()
        .map(|(label, value)| format!("  {label:<8} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::pem::CertInfo;

    #[test]
    fn description_names_what_is_at_stake_and_what_is_damaged() {
        let i = Inspection {
            name: CertName::parse("mon-app.fr").unwrap(),
            settings: None,
            info: Some(CertInfo {
                serial: "0a1b".into(),
                not_before: 0,
                not_after: 10 * 86_400,
                names: vec![],
                issuer: String::new(),
            }),
            problems: vec!["settings.json is damaged".into()],
            bundle: PathBuf::from("/ssl/mon-app.fr.pem"),
            bundle_exists: false,
        };
        let text = describe(&i, 86_400 / 2);
        assert!(text.contains("  name     mon-app.fr"), "{text}");
        assert!(text.contains("  serial   0a1b"), "{text}");
        assert!(
            text.contains("1970-01-11 00:00 UTC (9 days left)"),
            "{text}"
        );
        assert!(text.contains("/ssl/mon-app.fr.pem (not there)"), "{text}");
        assert!(
            text.contains("  damaged  settings.json is damaged"),
            "{text}"
        );
        assert_eq!(capitalized("revoke"), "Revoke");
    }
}
