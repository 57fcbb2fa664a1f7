//! `list` without reading every certificate: a cache of what it shows of each whole
//! certificate (`list-cache` in the state directory), each entry with the versions it was
//! read at, checked by the renew index's own `stat`s (the certificate's directory and
//! settings.json, its bundle). An entry whose versions differ, a damaged certificate, or a
//! cache that is missing, cut, damaged or edited is read again from the state: the cache is
//! never trusted over it. What changes with the clock (days left, due, next attempt) and the
//! CA's rate limit (a file per CA) are worked out at each run, never cached. A listing that
//! finds a damaged certificate (and so fails) writes no cache: it changes nothing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Entry, Wanted, read_entry};
use crate::issue::index::{
    Checks, Recorded, bundle_version, bundles_of, check_all, dir_line, dir_position, now_ns,
    parse_dir_line, seal, trusted, unseal,
};
use crate::pem::CertInfo;
use crate::stat::Ident;
use crate::store::{Inspection, Store};
use crate::types::CertName;

const HEADER: &str = "certctl list cache 2";

/// One line of the cache: what `list` shows of a whole certificate that depends only on its
/// state and bundle, and the versions it was read at. Owned when read from the cache,
/// borrowed from the entries when written.
#[derive(Serialize, Deserialize)]
struct Cached<'a> {
    name: Cow<'a, CertName>,
    /// `Store::version` and the bundle's, when read (both settled).
    state: u64,
    bundle: u64,
    /// Its stored ssl directory (a position in the cache's list); None: the default.
    dir: Option<usize>,
    wanted: Cow<'a, Wanted>,
    info: Cow<'a, CertInfo>,
    crl: Cow<'a, [String]>,
    pending: Cow<'a, [String]>,
    /// Until when its own record (back-off, the CA's Retry-After) holds it.
    held_until: Option<i64>,
    bundle_exists: bool,
}

/// What an entry needs, beyond itself, to be cached.
#[derive(Clone, Copy)]
struct Kept {
    state: u64,
    bundle: u64,
    dir: Option<usize>,
    held_until: Option<i64>,
}

/// Every stored certificate's entry, from the cache where it agrees with the state; the
/// cache is brought up to date (a failure to keep it only costs the next run the full
/// read). None when the backend keeps no versions: read everything.
pub(super) fn entries(store: &Store, ssl_dir: &Path) -> Option<Vec<Entry>> {
    store.names_version()?;
    let started = now_ns();
    let names = store.names().ok()?;
    let bytes = store.list_cache();
    let (mut dirs, lines) = bytes.as_deref().and_then(parse).unwrap_or_default();
    // both sorted by name: each certificate's line, if any; lines left over are of
    // certificates gone since (the cache is written again without them)
    let mut lines = lines.into_iter().peekable();
    let mut changed = false;
    let mut slots: Vec<Option<Cached<'static>>> = Vec::with_capacity(names.len());
    for name in &names {
        while lines.next_if(|l| l.name.as_ref() < name).is_some() {
            changed = true;
        }
        slots.push(lines.next_if(|l| l.name.as_ref() == name));
    }
    changed |= lines.next().is_some();
    let checks = Checks {
        store,
        ssl_dir,
        dirs: &dirs,
        started,
    };
    let current = check_all(&checks, names.len(), &|i| {
        let recorded = slots[i].as_ref().map(|c| Recorded {
            state: c.state,
            bundle: c.bundle,
            dir: c.dir,
        });
        (names[i].as_str(), recorded)
    });
    let now = crate::issue::now();
    let mut rate_limits = HashMap::new();
    let mut entries = Vec::with_capacity(names.len());
    let mut kept = Vec::with_capacity(names.len());
    for ((name, slot), current) in names.iter().zip(slots).zip(current) {
        match slot.filter(|_| current) {
            Some(cached) => {
                kept.push(Some(Kept {
                    state: cached.state,
                    bundle: cached.bundle,
                    dir: cached.dir,
                    held_until: cached.held_until,
                }));
                entries.push(entry_of(
                    store,
                    ssl_dir,
                    &dirs,
                    cached,
                    now,
                    &mut rate_limits,
                ));
            }
            None => {
                changed = true;
                let (entry, k) = read_again(store, ssl_dir, &mut dirs, name, started);
                entries.push(entry);
                kept.push(k);
            }
        }
    }
    // a listing that finds a damaged certificate fails (exit 1), and a run that fails
    // changes nothing in the state, as with renew's index
    let damaged = entries.iter().any(|e| !e.i.problems.is_empty());
    if changed && !damaged {
        let _ = store.save_list_cache(&render(&dirs, &entries, &kept));
    }
    Some(entries)
}

/// The entry of `name` read from the state, and what caching it needs: nothing for a
/// damaged certificate (read again at every run until it is mended) or one written too
/// recently to be trusted.
fn read_again(
    store: &Store,
    ssl_dir: &Path,
    dirs: &mut Vec<PathBuf>,
    name: &CertName,
    started: i64,
) -> (Entry, Option<Kept>) {
    // the versions before anything is read: a write in between shows at the next run
    let state = store.version(name).and_then(|v| trusted(v, started));
    let (bundles, stored_dir) = bundles_of(store, ssl_dir, name);
    let bundle = Ident::of(&bundles.path(name))
        .ok()
        .and_then(|i| bundle_version(&i, started));
    let entry = read_entry(store, &bundles, name);
    let whole = entry.i.problems.is_empty()
        && entry.cluster.is_none()
        && entry.wanted.is_some()
        && entry.i.info.is_some();
    let (Some(state), Some(bundle), true) = (state, bundle, whole) else {
        return (entry, None);
    };
    let status = store.status(name);
    let held_until = [status.backoff_until(), status.retry_after]
        .into_iter()
        .flatten()
        .max();
    let dir = stored_dir
        .filter(|d| d != ssl_dir)
        .map(|d| dir_position(dirs, d));
    let kept = Kept {
        state,
        bundle,
        dir,
        held_until,
    };
    (entry, Some(kept))
}

/// The entry a current cache line stands for at `now`; the CA's rate limit read once per
/// CA.
fn entry_of(
    store: &Store,
    ssl_dir: &Path,
    dirs: &[PathBuf],
    cached: Cached<'_>,
    now: i64,
    rate_limits: &mut HashMap<String, Option<i64>>,
) -> Entry {
    let server = &cached.wanted.server;
    let limit = *rate_limits
        .entry(server.url().to_owned())
        .or_insert_with(|| store.rate_limit(server));
    let dir = cached
        .dir
        .and_then(|i| dirs.get(i))
        .map_or(ssl_dir, PathBuf::as_path);
    let name = cached.name.into_owned();
    Entry {
        bundle: dir.join(format!("{name}.pem")),
        i: Inspection {
            name,
            // what list shows of the settings is `wanted`
            settings: None,
            info: Some(cached.info.into_owned()),
            problems: Vec::new(),
        },
        wanted: Some(cached.wanted.into_owned()),
        crl: cached.crl.into_owned(),
        next_attempt: [cached.held_until, limit]
            .into_iter()
            .flatten()
            .max()
            .filter(|at| *at > now),
        bundle_exists: cached.bundle_exists,
        pending: cached.pending.into_owned(),
        cluster: None,
    }
}

/// Header, one ssl directory per `dir` line (JSON strings), one JSON line per cached
/// certificate, and a checksum of all that.
fn render(dirs: &[PathBuf], entries: &[Entry], kept: &[Option<Kept>]) -> Vec<u8> {
    let mut body = format!("{HEADER}\n");
    for d in dirs {
        body += &dir_line(d);
    }
    for (e, k) in entries.iter().zip(kept) {
        let (Some(k), Some(wanted), Some(info)) = (k, &e.wanted, &e.i.info) else {
            continue;
        };
        let line = Cached {
            name: Cow::Borrowed(&e.i.name),
            state: k.state,
            bundle: k.bundle,
            dir: k.dir,
            wanted: Cow::Borrowed(wanted),
            info: Cow::Borrowed(info),
            crl: Cow::Borrowed(&e.crl),
            pending: Cow::Borrowed(&e.pending),
            held_until: k.held_until,
            bundle_exists: e.bundle_exists,
        };
        if let Ok(json) = serde_json::to_string(&line) {
            body += &json;
            body.push('\n');
        }
    }
    seal(body)
}

/// The cache as read, or None when it is not one whole cache (missing, cut, damaged,
/// edited).
fn parse(bytes: &[u8]) -> Option<(Vec<PathBuf>, Vec<Cached<'static>>)> {
    let body = unseal(bytes, HEADER)?;
    let mut dirs = Vec::new();
    let mut cached = Vec::with_capacity(body.len() / 512);
    for line in body.lines() {
        if let Some(dir) = parse_dir_line(line) {
            dirs.push(dir?);
            continue;
        }
        let c: Cached<'static> = serde_json::from_str(line).ok()?;
        if c.dir.is_some_and(|d| d >= dirs.len()) {
            return None;
        }
        cached.push(c);
    }
    Some((dirs, cached))
}
