//! Installing many certificates at once with the durability of one at a time, but one
//! flush per phase instead of eleven fsyncs per certificate (issue 19: a thousand renewals
//! spent 88 % of their system time in fsync, rename and unlink). Phases: every generation
//! and every bundle written to temp files, not synced; one syncfs per file system; then the
//! switches (`live`, bundles renamed into place); one more syncfs; only then the stamps and
//! output files; old generations removed beside the pushes. A crash at any moment leaves
//! each certificate's old files or its new ones (content is durable before anything points
//! to it), and whatever is half done (a live generation whose bundle is still the old one)
//! is what the next `renew` repairs. Each certificate's failure stays its own. Pushes and
//! hooks are the caller's.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, anyhow};

use super::{Issued, JobCert, write_outputs};
use crate::deploy::Bundles;
use crate::durable::{SECRET_MODE, rename_staged, stage_atomic, sync_fs};
use crate::pem;
use crate::store::{Staged, Store};
use crate::types::CertName;

/// One certificate on its way in: its staged generation and its bundle's temp file.
struct Pending {
    cert: JobCert,
    issued: Issued,
    staged: Staged,
    bundle: String,
    tmp: PathBuf,
}

/// Each certificate installed, and apart each that was not, with why.
type Installed = (Vec<(JobCert, Issued)>, Vec<(JobCert, anyhow::Error)>);

/// Installs every certificate of `batch` (as `install` does each one).
pub(super) fn install_batch(
    store: &Store,
    bundles: &Bundles,
    batch: Vec<(JobCert, Issued)>,
) -> Installed {
    let mut failed = Vec::new();
    // 1. each generation and each bundle written, nothing synced, nothing pointing to them
    let staged = in_parallel(batch, |(cert, issued)| {
        match stage(store, bundles, &cert, &issued) {
            Ok((staged, bundle, tmp)) => Step::Done(Pending {
                cert,
                issued,
                staged,
                bundle,
                tmp,
            }),
            Err(e) => Step::Failed(cert, e),
        }
    });
    let pending = sort_out(staged, &mut failed);
    // 2. their content durable before anything points to it
    let dirs: Vec<PathBuf> = pending
        .iter()
        .map(|p| bundles.dir(&p.cert.name).to_path_buf())
        .collect();
    if let Err(e) = flush(store, &dirs) {
        for p in pending {
            store.abandon(&p.staged);
            let _ = std::fs::remove_file(&p.tmp);
            failed.push((p.cert, anyhow!("{e:#}")));
        }
        return (Vec::new(), failed);
    }
    // 3. the switches: live generation, then its bundle (the order of a single install)
    let switched = in_parallel(pending, |p| match switch(store, bundles, &p) {
        Ok(()) => Step::Done(p),
        Err(e) => Step::Failed(p.cert, e),
    });
    let switched = sort_out(switched, &mut failed);
    // 4. the switches durable: only then is a certificate installed, pushed, hooked
    if let Err(e) = flush(store, &dirs) {
        for p in switched {
            failed.push((p.cert, anyhow!("{e:#}")));
        }
        return (Vec::new(), failed);
    }
    // 5. the bundle's stamp, the output files (the generations now too old: `prune`)
    let finished = in_parallel(switched, |p| {
        // the bundle already holds this content: only its stamp is written
        let stamped = bundles.write(store, &p.cert.name, &p.issued.info.serial, &p.bundle);
        let outputs = stamped.and_then(|_| write_outputs(&p.cert.settings.host.outputs, &p.issued));
        match outputs {
            Ok(()) => Step::Done((p.cert, p.issued)),
            Err(e) => Step::Failed(p.cert, e),
        }
    });
    let installed = sort_out(finished, &mut failed);
    (installed, failed)
}

/// Removes the generations of `names` older than their live one's predecessor, on a
/// thread of its own: it overlaps the pushes, which mostly wait for HAProxy. Joined before
/// the run ends (under the lock); nothing reads those generations meanwhile.
pub(super) fn prune(store: &Store, names: Vec<CertName>) -> std::thread::JoinHandle<()> {
    let store = store.clone();
    std::thread::spawn(move || {
        for name in &names {
            store.prune_generations(name);
        }
    })
}

/// What a phase made of one certificate (a failure is rare: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step<T> {
    Done(T),
    Failed(JobCert, anyhow::Error),
}

/// The certificates a phase is done with, in order; each failure moved to `failed`.
fn sort_out<T>(steps: Vec<Step<T>>, failed: &mut Vec<(JobCert, anyhow::Error)>) -> Vec<T> {
    let mut done = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Done(item) => done.push(item),
            Step::Failed(cert, e) => failed.push((cert, e)),
        }
    }
    done
}

/// `f` over every item on up to four threads, the results in order. Creating, renaming
/// and removing files is kernel work that spreads over the cores: most of a batch's time.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut items = items.into_iter();
    let mut chunks = Vec::new();
    loop {
        let chunk: Vec<T> = items.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Phase 1 for one certificate: its settings (durable, when they changed: rare), its
/// generation staged, its bundle in a temp file beside the bundle.
fn stage(
    store: &Store,
    bundles: &Bundles,
    cert: &JobCert,
    issued: &Issued,
) -> anyhow::Result<(Staged, String, PathBuf)> {
    let name = &cert.name;
    if store.settings(name).ok().flatten().as_ref() != Some(&cert.settings) {
        store.save_settings(name, &cert.settings)?;
    }
    let path = bundles.path(name);
    // what `Bundles::write` refuses: a directory, a pipe, a device in the bundle's place
    // (worded as `Bundles::write` words it: what stands there, and what to do)
    if let Some(why) = std::fs::symlink_metadata(&path)
        .ok()
        .filter(|meta| !meta.is_symlink())
        .and_then(|meta| crate::durable::not_regular(&meta))
    {
        anyhow::bail!(
            "the bundle {} cannot be replaced; move it away: {why}",
            path.display()
        );
    }
    let staged = store.stage_generation(name, &issued.key_pem, &issued.chain, &issued.info)?;
    let bundle = pem::bundle(&issued.chain, &issued.key_pem);
    match stage_atomic(&path, bundle.as_bytes(), SECRET_MODE) {
        Ok(tmp) => Ok((staged, bundle, tmp)),
        Err(e) => {
            store.abandon(&staged);
            Err(e).with_context(|| format!("writing the bundle {}", path.display()))
        }
    }
}

/// Phase 3 for one certificate: `live` switched, the reissue marker dropped, the bundle
/// renamed into place.
fn switch(store: &Store, bundles: &Bundles, p: &Pending) -> anyhow::Result<()> {
    let name = &p.cert.name;
    if let Err(e) = store.switch_live(&p.staged) {
        let _ = std::fs::remove_file(&p.tmp);
        return Err(e);
    }
    if store.reissue(name).is_some() {
        if let Err(e) = store.save_reissue(name, None) {
            let _ = std::fs::remove_file(&p.tmp);
            return Err(e);
        }
    }
    let path = bundles.path(name);
    rename_staged(&p.tmp, &path).with_context(|| format!("writing the bundle {}", path.display()))
}

/// One syncfs of each file system holding an ssl directory of `dirs`, then the store's.
fn flush(store: &Store, dirs: &[PathBuf]) -> anyhow::Result<()> {
    let mut devices = HashSet::new();
    for dir in dirs {
        let device = std::fs::metadata(dir).map(|m| m.dev()).ok();
        if device.is_none_or(|d| devices.insert(d)) {
            sync_fs(dir).with_context(|| format!("flushing {} to disk", dir.display()))?;
        }
    }
    store.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::trace::{self, Event};

    fn certificate(name: &str) -> (JobCert, Issued) {
        let name = CertName::parse(name).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let chain = crate::pem::Chain::parse(&params.self_signed(&key).unwrap().pem()).unwrap();
        let settings = serde_json::json!({
            "domains": [name.as_str()],
            "key_type": "ec256",
            "server": "local",
            "challenge": {"kind": "stateless"},
        });
        let cert = JobCert {
            name,
            settings: serde_json::from_value(settings).unwrap(),
        };
        let issued = Issued {
            key_pem: key.serialize_pem(),
            info: crate::pem::cert_info(&chain.leaf).unwrap(),
            chain,
        };
        (cert, issued)
    }

    fn setup() -> (tempfile::TempDir, Store, Bundles) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::files(&dir.path().join("state"));
        let bundles = Bundles::new(&dir.path().join("ssl"));
        store.check_writable().unwrap();
        bundles.check_writable().unwrap();
        (dir, store, bundles)
    }

    const NAMES: [&str; 3] = ["a.test", "b.test", "c.test"];

    #[test]
    fn content_is_flushed_before_any_switch_and_switches_before_the_return() {
        let (dir, store, bundles) = setup();
        let first: Vec<_> = NAMES.iter().map(|n| certificate(n)).collect();
        let (done, failed) = install_batch(&store, &bundles, first);
        assert!(failed.is_empty() && done.len() == 3);
        let second: Vec<_> = NAMES.iter().map(|n| certificate(n)).collect();
        let serials: Vec<String> = second.iter().map(|(_, i)| i.info.serial.clone()).collect();
        let mut result = None;
        let events = trace::record(dir.path(), || {
            result = Some(install_batch(&store, &bundles, second))
        });
        let (done, failed) = result.unwrap();
        assert!(failed.is_empty() && done.len() == 3);

        let at = |want: fn(&Event) -> bool| -> Vec<usize> {
            events
                .iter()
                .enumerate()
                .filter(|(_, e)| want(e))
                .map(|(i, _)| i)
                .collect()
        };
        let written = at(|e| matches!(e, Event::Written(_)));
        let synced = at(|e| matches!(e, Event::Synced(_)));
        let renamed = at(|e| matches!(e, Event::Renamed(_)));
        // five files of each generation and each bundle; each live link and bundle switched
        assert_eq!((written.len(), renamed.len()), (18, 6), "{events:#?}");
        let first_sync = synced.first().copied().unwrap_or(usize::MAX);
        assert!(
            written.iter().all(|&w| w < first_sync),
            "a file was written after the flush that should cover it: {events:#?}"
        );
        assert!(
            renamed.iter().all(|&r| r > first_sync),
            "something was switched before its content was flushed: {events:#?}"
        );
        assert!(
            synced.last() > renamed.last(),
            "the switches were not flushed before the batch returned: {events:#?}"
        );
        for ((name, serial), (cert, _)) in NAMES.iter().zip(&serials).zip(&done) {
            assert_eq!(cert.name.as_str(), *name);
            let live = store.lineage(&cert.name).unwrap().unwrap();
            assert_eq!(&live.info.serial, serial);
            let files = store.live_files(&cert.name).unwrap();
            assert!(bundles.holds(&cert.name, &pem::bundle(&files.chain, &files.key_pem)));
            assert!(
                bundles.stamped(&store, &cert.name, serial),
                "{name}: no stamp"
            );
        }
    }

    #[test]
    fn one_certificate_that_cannot_be_installed_fails_alone() {
        let (dir, store, bundles) = setup();
        // a directory where b.test's bundle goes
        std::fs::create_dir(dir.path().join("ssl/b.test.pem")).unwrap();
        let batch: Vec<_> = NAMES.iter().map(|n| certificate(n)).collect();
        let (done, failed) = install_batch(&store, &bundles, batch);
        let done: Vec<&str> = done.iter().map(|(c, _)| c.name.as_str()).collect();
        assert_eq!(done, ["a.test", "c.test"]);
        assert_eq!(failed.len(), 1);
        let err = format!("{:#}", failed[0].1);
        assert!(
            err.contains("b.test.pem") && err.contains("move it away"),
            "{err}"
        );
        // nothing of b.test went live, and no temp file is left beside the bundles
        assert!(store.live_files(&failed[0].0.name).is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("ssl"))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains(crate::durable::TMP_MARK)
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
