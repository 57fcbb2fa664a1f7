//! Which certificates need `renew`'s attention now, without reading each one: an index of
//! next-attention times kept by this host (`Backend::index`), each entry with the versions
//! of what it was computed from (the certificate's state, its bundle). An entry whose
//! versions differ, or an index that is missing, truncated, damaged or of another set of
//! certificates, is computed again from the state: the index is never trusted over it.
//! When a certificate next needs attention is decided in one function, `attention`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::deploy::Bundles;
use crate::pem;
use crate::store::{Store, Version, same_names};
use crate::types::CertName;

const HEADER: &str = "certctl renew index 1";

/// A version taken within this long of its last change may miss a write made in the same
/// clock tick: it is recorded as unknown, and computed again at the next run.
const SETTLE_NS: i64 = 100_000_000;

/// `attention` of a certificate that cannot be read (damaged, or a first request stopped
/// half way): `renew` says which. An index holding one is not written: a run that fails on
/// it changes nothing in the state.
const UNREADABLE: i64 = i64::MIN;

/// When `name` next needs attention from `renew` (unix seconds; `i64::MIN + 1`: now,
/// whatever the clock). Every reason is one line: a further one (a backoff, a pending
/// deploy) is one more line here, and the index follows.
pub fn attention(store: &Store, bundles: &Bundles, name: &CertName) -> i64 {
    let Ok(Some(lineage)) = store.lineage(name) else {
        return UNREADABLE;
    };
    let (info, settings) = (&lineage.info, &lineage.settings);
    let now = UNREADABLE + 1;
    [
        // due by lifetime, inside the CA's ARI window, or time to ask the CA again
        Some(pem::decision_changes_at(
            info.not_before,
            info.not_after,
            store.ari(name).as_ref(),
        )),
        // a request stopped between its settings and its certificate
        (!same_names(&settings.cert.domains, &info.names)).then_some(now),
        // reconfigured: issued again at the next renew
        store.reissue(name).map(|_| now),
        // a bundle that is not the stored certificate's (an interrupted install)
        (!super::bundle_is_current(store, bundles, name, &info.serial)).then_some(now),
        // a push to a stored HAProxy socket that has not succeeded yet
        (!super::pending(store, name, &info.serial, &settings.host.haproxy_sockets).is_empty())
            .then_some(now),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(now)
}

/// One certificate in the index.
struct Entry {
    attention: i64,
    /// `Store::version` when computed; None: not to be trusted (too recent, or unknown).
    state: Option<u64>,
    bundle: Option<u64>,
    /// Its stored ssl directory; None: the one of the command line.
    ssl_dir: Option<PathBuf>,
}

/// The certificates that need attention at `now`, with their stored ssl directory (None:
/// `ssl_dir`, the default), from the index where it agrees with the state; the index is
/// brought up to date. None when the backend keeps no versions: read everything.
pub fn needing_attention(
    store: &Store,
    ssl_dir: &Path,
    now: i64,
) -> Option<Vec<(CertName, Option<PathBuf>)>> {
    let names_version = store.names_version()?;
    let started = now_ns();
    let (recorded_names, mut entries) = store.index().and_then(|b| parse(&b)).unwrap_or_default();
    let names: Vec<String> = if recorded_names == Some(names_version.value) {
        entries.keys().cloned().collect()
    } else {
        let names = store.names().ok()?;
        entries.retain(|n, _| names.iter().any(|m| m.as_str() == n));
        names.iter().map(|n| n.to_string()).collect()
    };
    let mut changed = recorded_names != trusted(names_version, started);
    let mut due = Vec::new();
    for name in names {
        let Ok(cert) = CertName::parse(&name) else {
            return None; // not a name certctl wrote: read everything
        };
        let state = store.version(&cert).and_then(|v| trusted(v, started));
        let kept = entries.get(&name).filter(|e| {
            state.is_some()
                && e.state == state
                && e.bundle.is_some()
                && e.bundle
                    == bundle_version(&bundle_path(ssl_dir, e.ssl_dir.as_deref(), &cert), started)
        });
        let entry = match kept {
            Some(entry) => entry,
            None => {
                changed = true;
                let ssl = store
                    .settings(&cert)
                    .ok()
                    .flatten()
                    .and_then(|s| s.host.ssl_dir);
                let mut bundles = Bundles::new(ssl_dir);
                if let Some(dir) = &ssl {
                    bundles.set_dir(&cert, dir);
                }
                let entry = Entry {
                    attention: attention(store, &bundles, &cert),
                    state,
                    bundle: bundle_version(&bundles.path(&cert), started),
                    ssl_dir: ssl,
                };
                entries.insert(name.clone(), entry);
                &entries[&name]
            }
        };
        if entry.attention <= now {
            due.push((cert, entry.ssl_dir.clone()));
        }
    }
    if changed && !entries.values().any(|e| e.attention == UNREADABLE) {
        // a cache: failing to keep it only costs the next run the full read
        let _ = store.save_index(&render(trusted(names_version, started), &entries));
    }
    Some(due)
}

fn bundle_path(default: &Path, stored: Option<&Path>, name: &CertName) -> PathBuf {
    stored.unwrap_or(default).join(format!("{name}.pem"))
}

/// The bundle file's identity (inode, size, times), when settled.
fn bundle_version(path: &Path, now_ns: i64) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    let changed = (meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
        .max(meta.ctime() * 1_000_000_000 + meta.ctime_nsec());
    let mut hasher = std::hash::DefaultHasher::new();
    (meta.ino(), meta.len(), changed, meta.mode()).hash(&mut hasher);
    (changed < now_ns - SETTLE_NS).then(|| hasher.finish())
}

fn trusted(version: Version, now_ns: i64) -> Option<u64> {
    (version.changed_ns < now_ns - SETTLE_NS).then_some(version.value)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn opt_hex(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:x}"))
}

fn parse_hex(s: &str) -> Option<Option<u64>> {
    if s == "-" {
        Some(None)
    } else {
        u64::from_str_radix(s, 16).ok().map(Some)
    }
}

fn checksum(body: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

/// Header, the names' version, one ssl directory per `dir` line (JSON strings), one line per
/// certificate (`attention state bundle dir name`), and a checksum of all that.
fn render(names: Option<u64>, entries: &HashMap<String, Entry>) -> Vec<u8> {
    let mut dirs: Vec<&Path> = Vec::new();
    let mut lines = Vec::with_capacity(entries.len());
    for (name, e) in entries {
        let dir = match &e.ssl_dir {
            None => "-".to_owned(),
            Some(d) => match dirs.iter().position(|x| *x == d.as_path()) {
                Some(i) => i.to_string(),
                None => {
                    dirs.push(d);
                    (dirs.len() - 1).to_string()
                }
            },
        };
        lines.push(format!(
            "{} {} {} {dir} {name}\n",
            e.attention,
            opt_hex(e.state),
            opt_hex(e.bundle)
        ));
    }
    let mut body = format!("{HEADER}\nnames {}\n", opt_hex(names));
    for d in &dirs {
        let json = serde_json::to_string(&d.to_string_lossy()).unwrap_or_default();
        body += &format!("dir {json}\n");
    }
    lines.sort();
    body.extend(lines);
    let sum = checksum(&body);
    body += &format!("end {sum:x}\n");
    body.into_bytes()
}

/// The index, or None when it is not one whole index (missing, cut, damaged, edited).
fn parse(bytes: &[u8]) -> Option<(Option<u64>, HashMap<String, Entry>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body_end = text.trim_end_matches('\n').rfind('\n')? + 1;
    let (body, end) = text.split_at(body_end);
    let sum = u64::from_str_radix(end.trim_end().strip_prefix("end ")?, 16).ok()?;
    if checksum(body) != sum {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let names = parse_hex(lines.next()?.strip_prefix("names ")?)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut entries = HashMap::new();
    for line in lines {
        if let Some(json) = line.strip_prefix("dir ") {
            dirs.push(PathBuf::from(serde_json::from_str::<String>(json).ok()?));
            continue;
        }
        let mut fields = line.splitn(5, ' ');
        let attention = fields.next()?.parse().ok()?;
        let state = parse_hex(fields.next()?)?;
        let bundle = parse_hex(fields.next()?)?;
        let ssl_dir = match fields.next()? {
            "-" => None,
            i => Some(dirs.get(i.parse::<usize>().ok()?)?.clone()),
        };
        let name = fields.next()?.to_owned();
        entries.insert(
            name,
            Entry {
                attention,
                state,
                bundle,
                ssl_dir,
            },
        );
    }
    Some((names, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HashMap<String, Entry> {
        let mut entries = HashMap::new();
        entries.insert(
            "a.test".to_owned(),
            Entry {
                attention: 1_800_000_000,
                state: Some(0xabc),
                bundle: Some(7),
                ssl_dir: Some(PathBuf::from("/srv/ssl dir/\"x\"")),
            },
        );
        entries.insert(
            "b.test".to_owned(),
            Entry {
                attention: i64::MIN,
                state: None,
                bundle: None,
                ssl_dir: None,
            },
        );
        entries
    }

    #[test]
    fn an_index_reads_back_as_written() {
        let bytes = render(Some(42), &sample());
        let (names, entries) = parse(&bytes).unwrap();
        assert_eq!(names, Some(42));
        let a = &entries["a.test"];
        assert_eq!(
            (a.attention, a.state, a.bundle),
            (1_800_000_000, Some(0xabc), Some(7))
        );
        assert_eq!(a.ssl_dir.as_deref(), Some(Path::new("/srv/ssl dir/\"x\"")));
        assert_eq!(entries["b.test"].attention, i64::MIN);
        assert_eq!(entries["b.test"].ssl_dir, None);
    }

    #[test]
    fn a_cut_damaged_or_edited_index_is_no_index() {
        let bytes = render(Some(42), &sample());
        for cut in 0..bytes.len() - 1 {
            assert!(parse(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replace("1800000000", "1900000000");
        assert!(parse(edited.as_bytes()).is_none());
        assert!(parse(b"\x00\xff garbage\nend 0\n").is_none());
    }
}
