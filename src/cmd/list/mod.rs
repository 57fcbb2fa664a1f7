//! `certctl list`: one row per managed certificate on stdout, as a table or (`--json`) as a
//! JSON array whose field names are a stable interface. Takes no lock and writes nothing but its
//! own cache (cache.rs: a file replaced atomically, checked against the state at each run).
//! A damaged entry shows with its reason and never stops the listing; once everything is
//! printed, the exit code is 1 when any entry is damaged (so monitoring notices).

use anyhow::anyhow;
use serde::Serialize;

use std::path::PathBuf;

use crate::cli::ListArgs;
use crate::deploy::Bundles;
use crate::issue::{now, rfc3339};
use crate::pem;
use crate::settings::Global;
use crate::store::{Inspection, Store};
use crate::types::CertName;
use crate::types::{KNOWN_SERVERS, KeyType};

const DAY: i64 = 86_400;
/// Domains shown in a table cell before the rest is summed up as `+N`.
const TABLE_DOMAINS: usize = 3;
const HEADER: [&str; 9] = [
    "NAME",
    "DOMAINS",
    "KEY",
    "NOT-AFTER",
    "DAYS",
    "RENEW",
    "CA",
    "BUNDLE",
    "STATUS",
];

mod cache;

/// One stored certificate and its bundle on this host, read in full.
fn read_entry(store: &Store, bundles: &Bundles, name: &CertName) -> Entry {
    let i = store.inspect(name);
    let pending = match (&i.settings, &i.info) {
        (Some(s), Some(info)) => {
            crate::issue::pending(store, name, &info.serial, &s.host.haproxy_sockets)
                .iter()
                .map(ToString::to_string)
                .collect()
        }
        _ => Vec::new(),
    };
    let next_attempt = i.settings.as_ref().and_then(|s| {
        store
            .next_attempt(name, &s.cert.server, false)
            .filter(|at| *at > now())
    });
    let crl = store
        .live_leaf(name)
        .map(|der| pem::crl_distribution_points(&der))
        .unwrap_or_default();
    Entry {
        wanted: i.settings.as_ref().map(Wanted::of),
        i,
        crl,
        next_attempt,
        bundle: bundles.path(name),
        bundle_exists: bundles.exists(name),
        pending,
        cluster: store.cluster_view(name).and_then(Result::ok),
    }
}

/// What `list` shows of a certificate's settings (the rest of them it never shows).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Wanted {
    domains: Vec<String>,
    key_type: KeyType,
    server: crate::types::Server,
    profile: Option<String>,
    preferred_chain: Option<String>,
}

impl Wanted {
    fn of(s: &crate::settings::CertSettings) -> Self {
        Wanted {
            domains: s.cert.domains.iter().map(ToString::to_string).collect(),
            key_type: s.cert.key_type,
            server: s.cert.server.clone(),
            profile: s.cert.profile.clone(),
            preferred_chain: s.cert.preferred_chain.clone(),
        }
    }
}

/// One stored certificate and its bundle on this host.
struct Entry {
    i: Inspection,
    /// What its settings ask for (None: unreadable); `i.settings` is not used for showing.
    wanted: Option<Wanted>,
    /// The live certificate's CRL distribution points.
    crl: Vec<String>,
    /// When `renew` may next contact the CA (back-off or rate limit), if later than now.
    next_attempt: Option<i64>,
    bundle: PathBuf,
    bundle_exists: bool,
    /// HAProxy sockets that have not been given the live certificate (a failed push).
    pending: Vec<String>,
    /// A shared store's view: who renewed it, what each node installed.
    cluster: Option<crate::store::ClusterView>,
}

/// One element of `certctl list --json`. The field names are documented in the README and
/// must not change; a field that could not be read is null.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// "ok" or "damaged".
    pub status: &'static str,
    /// Why the entry is damaged (null when ok).
    pub error: Option<String>,
    /// The names certctl requests for it (settings.json), else the certificate's own names.
    pub domains: Option<Vec<String>>,
    pub key_type: Option<KeyType>,
    /// Serial number of the live certificate, lowercase hex.
    pub serial: Option<String>,
    /// RFC 3339, UTC.
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Whole days until not_after, rounded down; negative once expired.
    pub days_left: Option<i64>,
    /// When the certificate becomes due for renewal (a third of its lifetime before expiry).
    pub renew_after: Option<String>,
    pub renewal_due: Option<bool>,
    /// The ACME directory URL of the CA that issued it.
    pub server: Option<String>,
    /// The CA's profile sent with each order (`--profile`), and the preferred chain.
    pub profile: Option<String>,
    pub preferred_chain: Option<String>,
    /// Path of the bundle in the ssl directory, and whether that file exists.
    pub bundle: String,
    pub bundle_exists: bool,
    /// HAProxy sockets whose push of the live certificate failed and is still pending.
    pub pending_deploys: Vec<String>,
    /// When `renew` may next contact the CA for it, after failures or a rate limit (null:
    /// whenever it is due).
    pub next_attempt: Option<String>,
    /// Where the CA publishes its revocation (the live certificate's CRL distribution
    /// points; empty when it names none). Nothing in certctl uses OCSP.
    pub crl_distribution_points: Vec<String>,
    /// A shared store only: the live generation, the node that stored it, and the serial
    /// each node installed (absent with a state directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::store::ClusterView>,
}

pub fn run(global: &Global, args: ListArgs) -> anyhow::Result<()> {
    // 1. every entry, damaged or not; no state directory means no certificate. A state
    //    directory keeps a cache checked against it (cache.rs); other stores are read whole
    let store = super::open_store(global)?;
    let inspections = match cache::entries(&store, &global.ssl_dir) {
        Some(entries) => entries,
        None => {
            let bundles = super::bundles_of(global, &store);
            store
                .names()?
                .iter()
                .map(|name| read_entry(&store, &bundles, name))
                .collect()
        }
    };

    // 2. print it all
    let now = now();
    let text = if args.json {
        let rows: Vec<Row> = inspections.iter().map(|i| row(i, now)).collect();
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        let cells: Vec<[String; 9]> = inspections.iter().map(|i| cells(i, now)).collect();
        table(&cells) + &cluster_lines(&inspections)
    };
    super::print_stdout(&text)?;

    // 3. then say what is damaged, on stderr and in the exit code
    let damaged: Vec<&str> = inspections
        .iter()
        .filter(|e| !e.i.problems.is_empty())
        .map(|e| e.i.name.as_str())
        .collect();
    if damaged.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "damaged: {}; `certctl delete NAME` moves a damaged entry to the archive, then \
         `certctl request` can issue it again",
        damaged.join(", ")
    ))
}

fn domains(e: &Entry) -> Option<Vec<String>> {
    match (&e.wanted, &e.i.info) {
        (Some(w), _) => Some(w.domains.clone()),
        (None, Some(info)) => Some(info.names.clone()),
        (None, None) => None,
    }
}

fn days_left(now: i64, not_after: i64) -> i64 {
    (not_after - now).div_euclid(DAY)
}

/// The JSON row for one entry at `now`.
/// Under the table, for a shared store: per certificate, its live generation, the node that
/// renewed it and what each node installed ("=" when it is the live serial).
fn cluster_lines(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let (Some(c), Some(info)) = (&e.cluster, &e.i.info) else {
            continue;
        };
        let nodes: Vec<String> = c
            .installed
            .iter()
            .map(|(node, serial)| {
                let state = if *serial == info.serial {
                    "live"
                } else {
                    "older"
                };
                format!("{node}={serial} ({state})")
            })
            .collect();
        out.push_str(&format!(
            "{}: generation {}, renewed by {}; installed: {}\n",
            e.i.name,
            c.generation,
            c.renewed_by,
            if nodes.is_empty() {
                "none".to_owned()
            } else {
                nodes.join(", ")
            }
        ));
    }
    out
}

fn row(e: &Entry, now: i64) -> Row {
    let i = &e.i;
    let info = i.info.as_ref();
    let renew_at = info.map(|c| pem::renewal_time(c.not_before, c.not_after));
    Row {
        name: i.name.to_string(),
        status: if i.problems.is_empty() {
            "ok"
        } else {
            "damaged"
        },
        error: (!i.problems.is_empty()).then(|| i.problems.join("; ")),
        domains: domains(e),
        key_type: e.wanted.as_ref().map(|w| w.key_type),
        serial: info.map(|c| c.serial.clone()),
        not_before: info.map(|c| rfc3339(c.not_before)),
        not_after: info.map(|c| rfc3339(c.not_after)),
        days_left: info.map(|c| days_left(now, c.not_after)),
        renew_after: renew_at.map(rfc3339),
        renewal_due: renew_at.map(|at| now >= at),
        server: e.wanted.as_ref().map(|w| w.server.to_string()),
        profile: e.wanted.as_ref().and_then(|w| w.profile.clone()),
        preferred_chain: e.wanted.as_ref().and_then(|w| w.preferred_chain.clone()),
        bundle: e.bundle.display().to_string(),
        bundle_exists: e.bundle_exists,
        pending_deploys: e.pending.clone(),
        next_attempt: e.next_attempt.map(rfc3339),
        crl_distribution_points: e.crl.clone(),
        cluster: e.cluster.clone(),
    }
}

/// The table cells for one entry at `now`: short, without spaces (except in STATUS, the
/// last column), "-" for what could not be read.
fn cells(e: &Entry, now: i64) -> [String; 9] {
    let i = &e.i;
    let dash = || "-".to_owned();
    let info = i.info.as_ref();
    let domains = domains(e).map_or_else(dash, |d| {
        let mut shown = d
            .iter()
            .take(TABLE_DOMAINS)
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        if d.len() > TABLE_DOMAINS {
            shown.push_str(&format!(",+{}", d.len() - TABLE_DOMAINS));
        }
        shown
    });
    let key_type = e.wanted.as_ref().map_or_else(dash, |w| {
        serde_json::to_value(w.key_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(dash)
    });
    let days = info.map_or_else(dash, |c| {
        if c.not_after <= now {
            "expired".to_owned()
        } else {
            days_left(now, c.not_after).to_string()
        }
    });
    let renew = info.map_or_else(dash, |c| {
        let at = pem::renewal_time(c.not_before, c.not_after);
        if now >= at {
            "due".to_owned()
        } else {
            short_time(at)
        }
    });
    let ca = e.wanted.as_ref().map_or_else(dash, |w| {
        let ca = KNOWN_SERVERS
            .iter()
            .find(|(_, url)| *url == w.server.url())
            .map_or_else(|| w.server.to_string(), |(short, _)| (*short).to_owned());
        // the profile beside its CA: letsencrypt(shortlived)
        match &w.profile {
            Some(profile) => format!("{ca}({profile})"),
            None => ca,
        }
    });
    let bundle = if e.bundle_exists {
        e.bundle.display().to_string()
    } else {
        format!("{}(missing)", e.bundle.display())
    };
    let status = if !i.problems.is_empty() {
        format!("damaged: {}", i.problems.join("; "))
    } else if !e.pending.is_empty() {
        format!("deploy pending: {}", e.pending.join(", "))
    } else if let Some(at) = e.next_attempt {
        format!("next attempt {}", short_time(at))
    } else {
        "ok".to_owned()
    };
    [
        i.name.to_string(),
        domains,
        key_type,
        info.map_or_else(dash, |c| short_time(c.not_after)),
        days,
        renew,
        ca,
        bundle,
        status,
    ]
}

/// `2026-03-01T12:00Z`: minutes are enough in a table, and there is no space to split on.
fn short_time(ts: i64) -> String {
    let full = rfc3339(ts);
    match full.strip_suffix('Z') {
        Some(rest) if rest.len() == 19 => format!("{}Z", &rest[..16]),
        _ => full,
    }
}

/// Left-aligned columns separated by two spaces; nothing at all when there is no row.
fn table(rows: &[[String; 9]]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let header = HEADER.map(str::to_owned);
    let all: Vec<&[String; 9]> = std::iter::once(&header).chain(rows).collect();
    let mut widths = [0usize; 9];
    for row in &all {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (n, cell) in row.iter().enumerate() {
            if n + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[n] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pem::CertInfo;
    use crate::settings::{CertConfig, CertSettings, Challenge, HostConfig};
    use crate::types::{CertName, DomainName, Server};

    // 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600;

    fn inspection(problems: Vec<String>) -> Entry {
        let i = Inspection {
            name: CertName::parse("mon-app.fr").unwrap(),
            settings: Some(CertSettings {
                cert: CertConfig {
                    domains: [
                        "mon-app.fr",
                        "www.mon-app.fr",
                        "api.mon-app.fr",
                        "x.mon-app.fr",
                    ]
                    .iter()
                    .map(|d| DomainName::parse(d).unwrap())
                    .collect(),
                    key_type: KeyType::Rsa2048,
                    server: Server::parse("letsencrypt").unwrap(),
                    challenge: Challenge::Stateless,
                    email: None,
                    days: None,
                    client_auth: false,
                    challenges: Default::default(),
                    profile: None,
                    preferred_chain: None,
                },
                host: HostConfig::default(),
                unknown: Default::default(),
            }),
            info: Some(CertInfo {
                serial: "0a1b".into(),
                not_before: T0,
                not_after: T0 + 90 * DAY,
                names: vec!["mon-app.fr".into()],
                issuer: "CN=test".into(),
            }),
            problems,
        };
        Entry {
            wanted: i.settings.as_ref().map(Wanted::of),
            i,
            crl: Vec::new(),
            next_attempt: None,
            bundle: PathBuf::from("/etc/haproxy/ssl/mon-app.fr.pem"),
            bundle_exists: true,
            pending: Vec::new(),
            cluster: None,
        }
    }

    #[test]
    fn json_row_has_dates_days_and_renewal() {
        let r = row(&inspection(vec![]), T0 + 10 * DAY + 5);
        assert_eq!(r.status, "ok");
        assert_eq!(r.error, None);
        assert_eq!(r.not_after.as_deref(), Some("2026-04-01T00:00:00Z"));
        assert_eq!(r.days_left, Some(79), "rounded down");
        assert_eq!(r.renew_after.as_deref(), Some("2026-03-02T00:00:00Z"));
        assert_eq!(r.renewal_due, Some(false));
        assert_eq!(r.key_type, Some(KeyType::Rsa2048));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["key_type"], "rsa2048");
        assert_eq!(json["server"], KNOWN_SERVERS[0].1);
        assert_eq!(json["domains"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn expired_certificate_has_negative_days_and_is_due() {
        let r = row(&inspection(vec![]), T0 + 91 * DAY - 1);
        assert_eq!(r.days_left, Some(-1));
        assert_eq!(r.renewal_due, Some(true));
        let c = cells(&inspection(vec![]), T0 + 91 * DAY - 1);
        assert_eq!(c[4], "expired");
        assert_eq!(c[5], "due");
    }

    #[test]
    fn damaged_entry_keeps_what_could_be_read() {
        let mut i = inspection(vec!["/s/meta.json is damaged: EOF".into()]);
        i.i.info = None;
        let r = row(&i, T0);
        assert_eq!(r.status, "damaged");
        assert_eq!(r.error.as_deref(), Some("/s/meta.json is damaged: EOF"));
        assert_eq!(r.not_after, None);
        assert_eq!(r.days_left, None);
        assert!(r.domains.is_some(), "settings were readable");
        let c = cells(&i, T0);
        assert_eq!(c[3], "-");
        assert_eq!(c[8], "damaged: /s/meta.json is damaged: EOF");
    }

    #[test]
    fn table_cells_are_short_and_aligned() {
        let c = cells(&inspection(vec![]), T0);
        assert_eq!(c[1], "mon-app.fr,www.mon-app.fr,api.mon-app.fr,+1");
        assert_eq!(c[2], "rsa2048");
        assert_eq!(c[3], "2026-04-01T00:00Z");
        assert_eq!(c[4], "90");
        assert_eq!(c[6], "letsencrypt");
        let text = table(&[c.clone(), c]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME        DOMAINS"), "{text}");
        let col = lines[0].find("BUNDLE").unwrap();
        assert_eq!(&lines[1][col..col + 5], "/etc/");
        assert_eq!(table(&[]), "", "no header without rows");
    }
}
