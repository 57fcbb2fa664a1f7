//! Which certificates need `renew`'s attention now, without reading each one: an index of
//! next-attention times kept by this host (`Backend::index`), each entry with the versions
//! of what it was computed from (the certificate's state, its bundle). An entry whose
//! versions differ, or an index that is missing, truncated, damaged or of another set of
//! certificates, is computed again from the state: the index is never trusted over it.
//! When a certificate next needs attention is decided in one function, `attention`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use crate::deploy::Bundles;
use crate::pem;
use crate::stat::{Dir, Ident};
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

/// One certificate in the index: 32 bytes, ten thousand of them held at once.
#[derive(Clone, Copy)]
struct Entry {
    attention: i64,
    /// `Store::version` when computed; None: not to be trusted (too recent, or unknown; a
    /// version that happens to be 0 too, which only costs computing it again).
    state: Option<NonZeroU64>,
    bundle: Option<NonZeroU64>,
    /// Its stored ssl directory (a position in the index's list); None: the one of the
    /// command line.
    dir: Option<u32>,
}

fn nonzero(v: Option<u64>) -> Option<NonZeroU64> {
    v.and_then(NonZeroU64::new)
}

/// Below this many certificates the checks stay on one thread (starting one costs more).
const PARALLEL_FROM: usize = 2_000;

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
    let bytes = store.index();
    let Index {
        names: recorded_names,
        mut dirs,
        mut entries,
    } = bytes.as_deref().and_then(parse).unwrap_or_default();
    // 1. the certificates: the index's own when the set is unchanged (names borrowed from
    //    it, nothing copied), else listed
    let listed: Vec<CertName>;
    if recorded_names == Some(names_version.value) {
        // not a name certctl wrote: read everything
        if !entries.iter().all(|(name, _)| CertName::is_valid(name)) {
            return None;
        }
    } else {
        listed = store.names().ok()?;
        let mut by_name: HashMap<&str, Entry> = entries
            .into_iter()
            .filter_map(|(name, entry)| Some((name, entry?)))
            .collect();
        entries = listed
            .iter()
            .map(|n| (n.as_str(), by_name.remove(n.as_str())))
            .collect();
    }
    // 2. which entries still agree with the state, the stats spread over the cores
    let checks = Checks {
        store,
        ssl_dir,
        dirs: &dirs,
        started,
    };
    let current = check_all(&checks, entries.len(), &|i| {
        let (name, entry) = &entries[i];
        (*name, entry.as_ref().and_then(Entry::recorded))
    });
    // 3. the others computed again from the state
    let mut changed = recorded_names != trusted(names_version, started);
    let mut due = Vec::new();
    for ((name, slot), current) in entries.iter_mut().zip(current) {
        let entry = match slot {
            Some(entry) if current => *entry,
            _ => {
                changed = true;
                let cert = CertName::parse(name).ok()?;
                let entry = compute(store, ssl_dir, &mut dirs, &cert, started);
                *slot = Some(entry);
                entry
            }
        };
        if entry.attention <= now {
            let dir = entry.dir.map(|i| dirs[i as usize].clone());
            due.push((CertName::parse(name).ok()?, dir));
        }
    }
    let unreadable = entries
        .iter()
        .any(|(_, e)| e.is_some_and(|e| e.attention == UNREADABLE));
    if changed && !unreadable {
        // a cache: failing to keep it only costs the next run the full read
        let _ = store.save_index(&render(
            trusted(names_version, started),
            &dirs,
            entries.iter().filter_map(|(n, e)| Some((*n, (*e)?))),
        ));
    }
    Some(due)
}

/// The entry of `cert` computed from the state; its version taken first, so that a write
/// in between shows at the next run.
fn compute(
    store: &Store,
    ssl_dir: &Path,
    dirs: &mut Vec<PathBuf>,
    cert: &CertName,
    started: i64,
) -> Entry {
    let state = nonzero(store.version(cert).and_then(|v| trusted(v, started)));
    let (bundles, ssl) = bundles_of(store, ssl_dir, cert);
    let dir = ssl.and_then(|d| u32::try_from(dir_position(dirs, d)).ok());
    let bundle = nonzero(
        Ident::of(&bundles.path(cert))
            .ok()
            .and_then(|i| bundle_version(&i, started)),
    );
    Entry {
        attention: attention(store, &bundles, cert),
        state,
        bundle,
        dir,
    }
}

/// Where `cert`'s bundle is: its stored ssl directory (returned too), else `ssl_dir`.
pub(crate) fn bundles_of(
    store: &Store,
    ssl_dir: &Path,
    cert: &CertName,
) -> (Bundles, Option<PathBuf>) {
    let stored = store
        .settings(cert)
        .ok()
        .flatten()
        .and_then(|s| s.host.ssl_dir);
    let mut bundles = Bundles::new(ssl_dir);
    if let Some(dir) = &stored {
        bundles.set_dir(cert, dir);
    }
    (bundles, stored)
}

/// The position of `dir` in a cache's list of ssl directories, added when new.
pub(crate) fn dir_position(dirs: &mut Vec<PathBuf>, dir: PathBuf) -> usize {
    dirs.iter().position(|x| *x == dir).unwrap_or_else(|| {
        dirs.push(dir);
        dirs.len() - 1
    })
}

impl Entry {
    fn recorded(&self) -> Option<Recorded> {
        Some(Recorded {
            state: self.state?.get(),
            bundle: self.bundle?.get(),
            dir: self.dir.map(|d| d as usize),
        })
    }
}

/// What a cache recorded of a certificate: the versions of its state and bundle it was
/// computed at, and where the bundle is (None: the ssl directory of the command line;
/// Some(i): the cache's i-th one).
#[derive(Clone, Copy)]
pub(crate) struct Recorded {
    pub state: u64,
    pub bundle: u64,
    pub dir: Option<usize>,
}

/// What every check of a run shares.
pub(crate) struct Checks<'a> {
    pub store: &'a Store,
    pub ssl_dir: &'a Path,
    pub dirs: &'a [PathBuf],
    pub started: i64,
}

/// What `check_all` asks of the i-th certificate: its name (one `CertName::is_valid`
/// accepts) and what was recorded of it, if anything.
pub(crate) type Item<'n> = dyn Fn(usize) -> (&'n str, Option<Recorded>) + Sync + 'n;

/// For each of `count` certificates, whether it is current: the versions of its state and
/// bundle now, as trusted at `started`, are the recorded ones (never for one without a
/// record). Over two threads for a large store, each with its directories opened once.
pub(crate) fn check_all<'n>(checks: &Checks<'_>, count: usize, item: &Item<'n>) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    if threads < 2 || count < PARALLEL_FROM {
        return checks.check(0..count, item);
    }
    let half = count / 2;
    std::thread::scope(|scope| {
        let other = scope.spawn(|| checks.check(half..count, item));
        let mut first = checks.check(0..half, item);
        // a thread that failed leaves its certificates not current: computed again
        first.extend(other.join().unwrap_or_else(|_| vec![false; count - half]));
        first
    })
}

impl Checks<'_> {
    fn check<'n>(&self, range: std::ops::Range<usize>, item: &Item<'n>) -> Vec<bool> {
        let (ssl_dir, dirs, started) = (self.ssl_dir, self.dirs, self.started);
        let versions = self.store.versions();
        let default = Dir::open(ssl_dir).ok();
        let opened: Vec<Option<Dir>> = dirs.iter().map(|d| Dir::open(d).ok()).collect();
        let mut file = Vec::with_capacity(256);
        range
            .map(|i| {
                let (name, recorded) = item(i);
                let (Some(recorded), Some(versions)) = (recorded, &versions) else {
                    return false;
                };
                let state = versions.of(name).and_then(|v| trusted(v, started));
                if state != Some(recorded.state) {
                    return false;
                }
                let dir = match recorded.dir {
                    None => default.as_ref(),
                    Some(i) => opened.get(i).and_then(Option::as_ref),
                };
                let Some(dir) = dir else {
                    return false;
                };
                file.clear();
                file.extend_from_slice(name.as_bytes());
                file.extend_from_slice(b".pem");
                let bundle = dir
                    .ident(&file)
                    .ok()
                    .and_then(|i| bundle_version(&i, started));
                bundle == Some(recorded.bundle)
            })
            .collect()
    }
}

/// The bundle file's identity (inode, size, times), when settled.
pub(crate) fn bundle_version(ident: &Ident, now_ns: i64) -> Option<u64> {
    let changed = ident.changed_ns();
    let mut hasher = std::hash::DefaultHasher::new();
    (ident.ino, ident.size, changed, ident.mode).hash(&mut hasher);
    (changed < now_ns - SETTLE_NS).then(|| hasher.finish())
}

pub(crate) fn trusted(version: Version, now_ns: i64) -> Option<u64> {
    (version.changed_ns < now_ns - SETTLE_NS).then_some(version.value)
}

pub(crate) fn now_ns() -> i64 {
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

/// `body` (which ends with a newline) sealed with its checksum on a last `end` line: a cache
/// cut, damaged or edited by hand no longer reads as one (`unseal`).
pub(crate) fn seal(mut body: String) -> Vec<u8> {
    let sum = checksum(&body);
    body += &format!("end {sum:x}\n");
    body.into_bytes()
}

/// The body of a sealed cache whose first line is `header`, without that line; None when it
/// is not one whole cache.
pub(crate) fn unseal<'a>(bytes: &'a [u8], header: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body_end = text.trim_end_matches('\n').rfind('\n')? + 1;
    let (body, end) = text.split_at(body_end);
    let sum = u64::from_str_radix(end.trim_end().strip_prefix("end ")?, 16).ok()?;
    if checksum(body) != sum {
        return None;
    }
    body.strip_prefix(header)?.strip_prefix('\n')
}

/// A cache's `dir` line: an ssl directory as a JSON string.
pub(crate) fn dir_line(dir: &Path) -> String {
    let json = serde_json::to_string(&dir.to_string_lossy()).unwrap_or_default();
    format!("dir {json}\n")
}

/// The directory of a `dir` line (None: not one).
pub(crate) fn parse_dir_line(line: &str) -> Option<Option<PathBuf>> {
    let json = line.strip_prefix("dir ")?;
    Some(serde_json::from_str::<String>(json).ok().map(PathBuf::from))
}

/// Header, the names' version, one ssl directory per `dir` line (JSON strings), one line per
/// certificate (`attention state bundle dir name`), and a checksum of all that.
fn render<'a>(
    names: Option<u64>,
    dirs: &[PathBuf],
    entries: impl Iterator<Item = (&'a str, Entry)>,
) -> Vec<u8> {
    // only the directories still named, numbered again
    let mut used: Vec<u32> = Vec::new();
    let mut lines = Vec::new();
    for (name, e) in entries {
        let dir = match e.dir {
            None => "-".to_owned(),
            Some(d) => match used.iter().position(|x| *x == d) {
                Some(i) => i.to_string(),
                None => {
                    used.push(d);
                    (used.len() - 1).to_string()
                }
            },
        };
        lines.push(format!(
            "{} {} {} {dir} {name}\n",
            e.attention,
            opt_hex(e.state.map(NonZeroU64::get)),
            opt_hex(e.bundle.map(NonZeroU64::get))
        ));
    }
    let mut body = format!("{HEADER}\nnames {}\n", opt_hex(names));
    for d in used {
        body += &dir_line(&dirs[d as usize]);
    }
    lines.sort();
    body.extend(lines);
    seal(body)
}

/// An index as read: the names' version, the ssl directories, the entries by name.
#[derive(Default)]
struct Index<'a> {
    names: Option<u64>,
    dirs: Vec<PathBuf>,
    /// Each certificate's entry (Some when read from the index).
    entries: Vec<(&'a str, Option<Entry>)>,
}

/// The index, or None when it is not one whole index (missing, cut, damaged, edited).
fn parse(bytes: &[u8]) -> Option<Index<'_>> {
    let body = unseal(bytes, HEADER)?;
    let mut lines = body.lines();
    let names = parse_hex(lines.next()?.strip_prefix("names ")?)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut entries = Vec::with_capacity(body.len() / 64);
    for line in lines {
        if let Some(dir) = parse_dir_line(line) {
            dirs.push(dir?);
            continue;
        }
        let mut fields = line.splitn(5, ' ');
        let attention = fields.next()?.parse().ok()?;
        let state = nonzero(parse_hex(fields.next()?)?);
        let bundle = nonzero(parse_hex(fields.next()?)?);
        let dir = match fields.next()? {
            "-" => None,
            i => Some(
                i.parse::<u32>()
                    .ok()
                    .filter(|i| (*i as usize) < dirs.len())?,
            ),
        };
        let name = fields.next()?;
        entries.push((
            name,
            Some(Entry {
                attention,
                state,
                bundle,
                dir,
            }),
        ));
    }
    Some(Index {
        names,
        dirs,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<PathBuf>, Vec<(&'static str, Entry)>) {
        let dirs = vec![
            PathBuf::from("/srv/unused"),
            PathBuf::from("/srv/ssl dir/\"x\""),
        ];
        let entries = vec![
            (
                "a.test",
                Entry {
                    attention: 1_800_000_000,
                    state: NonZeroU64::new(0xabc),
                    bundle: NonZeroU64::new(7),
                    dir: Some(1),
                },
            ),
            (
                "b.test",
                Entry {
                    attention: i64::MIN,
                    state: None,
                    bundle: None,
                    dir: None,
                },
            ),
        ];
        (dirs, entries)
    }

    fn rendered() -> Vec<u8> {
        let (dirs, entries) = sample();
        render(Some(42), &dirs, entries.into_iter())
    }

    #[test]
    fn an_entry_stays_small() {
        // ten thousand of them are held at once by a `renew` with nothing due
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 32);
    }

    #[test]
    fn an_index_reads_back_as_written() {
        let bytes = rendered();
        let index = parse(&bytes).unwrap();
        assert_eq!(index.names, Some(42));
        let entries: HashMap<&str, Entry> = index
            .entries
            .into_iter()
            .filter_map(|(n, e)| Some((n, e?)))
            .collect();
        let a = &entries["a.test"];
        assert_eq!(
            (a.attention, a.state, a.bundle),
            (1_800_000_000, NonZeroU64::new(0xabc), NonZeroU64::new(7))
        );
        // only the directories still named are kept
        assert_eq!(index.dirs, [PathBuf::from("/srv/ssl dir/\"x\"")]);
        assert_eq!(a.dir, Some(0));
        assert_eq!(entries["b.test"].attention, i64::MIN);
        assert_eq!(entries["b.test"].dir, None);
    }

    #[test]
    fn a_cut_damaged_or_edited_index_is_no_index() {
        let bytes = rendered();
        for cut in 0..bytes.len() - 1 {
            assert!(parse(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replace("1800000000", "1900000000");
        assert!(parse(edited.as_bytes()).is_none());
        assert!(parse(b"\x00\xff garbage\nend 0\n").is_none());
    }

    #[test]
    fn checks_over_two_threads_agree_with_one_thread_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (state, ssl) = (dir.path().join("state"), dir.path().join("ssl"));
        std::fs::create_dir_all(state.join("certs")).unwrap();
        std::fs::create_dir(&ssl).unwrap();
        let mut names = Vec::new();
        for i in 0..PARALLEL_FROM + 101 {
            let name = CertName::parse(&format!("n{i}.test")).unwrap();
            let cert_dir = state.join("certs").join(name.as_str());
            std::fs::create_dir(&cert_dir).unwrap();
            std::fs::write(cert_dir.join("settings.json"), format!("{i}")).unwrap();
            // every third without a bundle: no bundle version
            if i % 3 != 0 {
                std::fs::write(ssl.join(format!("{name}.pem")), "x".repeat(i)).unwrap();
            }
            names.push(name);
        }
        let store = Store::files(&state);
        // all settled
        let started = now_ns() + 10 * SETTLE_NS;
        let versions = store.versions().unwrap();
        // every fifth not cached (the offsets of the halves); a missing bundle recorded as 0
        let recorded: Vec<Option<Recorded>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let state = trusted(versions.of(n.as_str())?, started)?;
                let bundle = Ident::of(&ssl.join(format!("{n}.pem")))
                    .ok()
                    .and_then(|id| bundle_version(&id, started))
                    .unwrap_or(0);
                (i % 5 != 0).then_some(Recorded {
                    state,
                    bundle,
                    dir: None,
                })
            })
            .collect();
        let checks = Checks {
            store: &store,
            ssl_dir: &ssl,
            dirs: &[],
            started,
        };
        let item = |i: usize| (names[i].as_str(), recorded[i]);
        let parallel = check_all(&checks, names.len(), &item);
        let sequential = checks.check(0..names.len(), &item);
        assert_eq!(parallel, sequential);
        assert_eq!(parallel.len(), names.len());
        for (i, current) in parallel.iter().enumerate() {
            assert_eq!(*current, i % 3 != 0 && i % 5 != 0, "{i}");
        }
        // each certificate checked against its own record: another's version is not its own
        let mut current = (0..names.len()).rev().filter(|i| parallel[*i]);
        let (last, before) = (current.next().unwrap(), current.next().unwrap());
        let mut swapped = recorded.clone();
        swapped[last] = Some(Recorded {
            state: recorded[before].unwrap().state,
            ..recorded[last].unwrap()
        });
        let item = |i: usize| (names[i].as_str(), swapped[i]);
        let after = check_all(&checks, names.len(), &item);
        assert!(last > names.len() / 2 && !after[last]);
        assert_eq!(after[..last], parallel[..last]);
    }
}
