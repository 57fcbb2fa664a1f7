//! One module per subcommand; each reads top to bottom as the steps it takes and never
//! imports a sibling. What several commands share lives here: opening the state and the ssl
//! directory, the lock wait, choosing certificates by name, confirmations, stdout.

pub mod account;
pub mod ca;
pub mod check;
pub mod concat;
pub mod delete;
pub mod deploy;
pub mod import;
pub mod list;
pub mod reconfigure;
pub mod renew;
pub mod request;
pub mod revoke;
pub mod store;
pub mod sync;

use std::io::IsTerminal;

use anyhow::anyhow;

use crate::deploy::Bundles;
use crate::error::BadInput;
use crate::issue::date;
pub use crate::output::print_stdout;
use crate::settings::Global;
use crate::store::{Inspection, Store};
use crate::types::CertName;

/// The state and this host's ssl directories: the one the global settings name, and the
/// one stored with each certificate (where its bundle is written and read). A state that
/// someone other than root (or the running user) could have written is refused.
pub fn open(global: &Global) -> anyhow::Result<(Store, Bundles)> {
    let store = open_store(global)?;
    let bundles = bundles_of(global, &store);
    Ok((store, bundles))
}

/// Where each stored certificate's bundle is: its stored ssl directory, else the default.
pub fn bundles_of(global: &Global, store: &Store) -> Bundles {
    let mut bundles = Bundles::new(&global.ssl_dir);
    for name in store.names().unwrap_or_default() {
        if let Ok(Some(settings)) = store.settings(&name) {
            if let Some(dir) = &settings.host.ssl_dir {
                bundles.set_dir(&name, dir);
            }
        }
    }
    bundles
}

/// The state alone, checked to be trusted (`open` also reads every stored ssl directory).
pub fn open_store(global: &Global) -> anyhow::Result<Store> {
    let store = crate::store::open(&global.store, &global.state_dir)?;
    store.check_trusted().map_err(BadInput::new)?;
    Ok(store)
}

/// Proves both the state and the ssl directory can be written, then takes the lock and
/// clears what a killed run left in the ssl directory.
pub fn lock_for_writing(
    global: &Global,
    store: &Store,
    bundles: &Bundles,
) -> anyhow::Result<Box<dyn crate::store::Lock>> {
    store.check_writable()?;
    bundles.check_writable()?;
    let lock = store.lock(global.lock_wait)?;
    bundles.remove_stale_temp_files();
    Ok(lock)
}

/// As `lock_for_writing`, for a run whose certificates are then locked one by one
/// (`renew`): with a shared store the lock is this host's alone (its state directory's), so
/// that nodes work side by side while two runs on one host do not.
pub fn lock_this_host(
    global: &Global,
    store: &Store,
    bundles: &Bundles,
) -> anyhow::Result<Box<dyn crate::store::Lock>> {
    if global.store.etcd().is_none() {
        return lock_for_writing(global, store, bundles);
    }
    store.check_writable()?;
    bundles.check_writable()?;
    let lock = Store::files(&global.state_dir).lock(global.lock_wait)?;
    bundles.remove_stale_temp_files();
    Ok(lock)
}

/// The lock of `name` across the nodes of a shared store, waited for (nothing to take with
/// a store of one host, whose lock covers it).
pub fn lock_cert(
    global: &Global,
    store: &Store,
    name: &CertName,
) -> anyhow::Result<Box<dyn crate::store::Lock>> {
    match store.lock_cert(name, Some(global.lock_wait))? {
        crate::store::Taken::Held(lock) => Ok(lock),
        crate::store::Taken::Busy(node) => Err(anyhow!("{name}: node {node} holds its lock")),
    }
}

/// The error for a name certctl does not manage (bad input: exit 2).
/// Stops managing `name`: its state, and its bundle when `include_bundle`, move into one new
/// archive folder; returns where. The bundle leaves the ssl directory first, so an
/// interruption leaves the certificate managed and `certctl concat` can rebuild the bundle;
/// when archiving fails, the bundle is put back.
pub fn archive(
    store: &Store,
    bundles: &Bundles,
    name: &CertName,
    include_bundle: bool,
) -> anyhow::Result<String> {
    let bundle = if include_bundle {
        bundles.take(name)?
    } else {
        None
    };
    let attachments: Vec<(String, Vec<u8>)> = bundle
        .iter()
        .map(|b| (format!("{name}.pem"), b.clone()))
        .collect();
    match store.archive(name, crate::issue::now(), &attachments) {
        Ok(folder) => Ok(folder),
        Err(e) => {
            let note = match bundle.map(|b| bundles.put_back(name, &b)) {
                Some(Err(put)) => format!(
                    "; its bundle could not be put back ({put:#}): `certctl concat {name}` rebuilds it"
                ),
                _ => String::new(),
            };
            Err(e.context(format!("archiving {name}{note}")))
        }
    }
}

/// Whether the bundle of `name` stays where it is because HAProxy names the file itself, so
/// that HAProxy would not start again without it: read in HAProxy's configuration (`config`,
/// else the default one when it exists) and asked of each running HAProxy in `sockets` (a
/// certificate loaded outside every crt-list is named by a `crt FILE` line). When so, says
/// where and what to change; on a terminal, unless `yes`, asks whether to move it anyway.
pub fn bundle_stays(
    global: &Global,
    bundles: &Bundles,
    name: &CertName,
    config: Option<&std::path::Path>,
    sockets: &[crate::types::Socket],
    yes: bool,
) -> anyhow::Result<bool> {
    let bundle = bundles.path(name);
    let named = crate::deploy::haproxy_cfg::where_named(config, &bundle)
        .map(|(file, line, text)| {
            format!(
                "HAProxy's configuration names its bundle ({}, line {line}: `{text}`)",
                file.display()
            )
        })
        .or_else(|| {
            sockets
                .iter()
                .find_map(|socket| named_by_running_haproxy(global, socket, &bundle))
        });
    let Some(named) = named else {
        return Ok(false);
    };
    crate::log::warn(format_args!(
        "{name}: {named}, so HAProxy would not start again without it: the bundle stays in \
         place. Take it out of that line (or point it at another certificate), reload HAProxy, \
         then remove {}",
        bundle.display()
    ));
    if yes || !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(true);
    }
    let question = format!(
        "Move {} to the archive anyway (HAProxy will not start until its configuration \
         stops naming it)?",
        bundle.display()
    );
    let move_it = crate::prompt::yes_no(&question)
        .map_err(|e| anyhow!("reading the answer: {e}; nothing was changed"))?;
    Ok(!move_it)
}

/// Whether the HAProxy behind `socket` names `bundle` itself: the configuration files its
/// process was started with (when it runs on this host), else a certificate it loaded
/// outside every crt-list. Says how it knows.
fn named_by_running_haproxy(
    global: &Global,
    socket: &crate::types::Socket,
    bundle: &std::path::Path,
) -> Option<String> {
    let proxy = crate::deploy::haproxy::Haproxy::new(socket.clone(), global.haproxy_timeout);
    let asked = proxy.local_pid().and_then(|pid| {
        let configs = pid.map(crate::deploy::haproxy_cfg::configs_of_process);
        if let Some((file, line, text)) = configs
            .as_deref()
            .and_then(|c| crate::deploy::haproxy_cfg::where_named_in(c, bundle))
        {
            return Ok(Some(format!(
                "the configuration of HAProxy at {socket} names its bundle ({}, line {line}: \
                 `{text}`)",
                file.display()
            )));
        }
        Ok(proxy.loaded_outside_lists(bundle)?.map(|as_named| {
            format!(
                "HAProxy at {socket} loaded its bundle ({as_named}) outside every crt-list and \
                 directory: a `crt` line of its configuration names the file"
            )
        }))
    });
    asked.unwrap_or_else(|e| {
        crate::log::verbose(format_args!("asking HAProxy at {socket}: {e}"));
        None
    })
}

/// Ok when `errors` is empty; otherwise each is said and the first is the error, under
/// `done` (what did happen).
pub fn first_of(errors: Vec<anyhow::Error>, done: &str) -> anyhow::Result<()> {
    let mut errors = errors.into_iter();
    let Some(first) = errors.next() else {
        return Ok(());
    };
    for e in errors {
        crate::log::error(format_args!("{e:#}"));
    }
    Err(first.context(done.to_owned()))
}

/// The certificates a command works on: those named (each valid and managed, duplicates
/// dropped; checked before anything is written), or every managed one.
pub fn selected_names(
    global: &Global,
    store: &Store,
    raw: &[String],
) -> anyhow::Result<Vec<CertName>> {
    if raw.is_empty() {
        return store.names();
    }
    let mut names = Vec::new();
    for raw in raw {
        let name = CertName::parse(raw).map_err(BadInput::new)?;
        if !store.manages(&name) {
            return Err(not_managed(global, &name));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

pub fn not_managed(global: &Global, name: &CertName) -> anyhow::Error {
    BadInput::new(format!(
        "no certificate named {name} is managed in {}; `certctl list` shows the names \
         (pass --state-dir if it is kept elsewhere)",
        global.state_dir.display()
    ))
    .into()
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
    crate::log::say(format_args!("{summary}"));
    crate::prompt::yes_no(question)
        .map_err(|e| anyhow!("reading the answer: {e}; nothing was changed"))
}

/// What a person should see before saying yes: one `label  value` line per fact.
pub fn describe(i: &Inspection, bundles: &Bundles, now: i64) -> String {
    let mut lines: Vec<(&str, String)> = vec![("name", i.name.to_string())];
    if let Some(s) = &i.settings {
        lines.push(("domains", crate::issue::join(&s.cert.domains)));
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
        lines.push(("CA", s.cert.server.to_string()));
    }
    let bundle = bundles.path(&i.name);
    lines.push((
        "bundle",
        if bundle.is_file() {
            bundle.display().to_string()
        } else {
            format!("{} (not there)", bundle.display())
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
    use crate::store::Inspection;

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
        };
        let text = describe(&i, &Bundles::new(&PathBuf::from("/ssl")), 86_400 / 2);
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
