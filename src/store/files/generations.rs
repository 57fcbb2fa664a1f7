//! A certificate's generations in the file backend: each new one written into its own
//! directory `gN` beside the live one, then `live` switched to it by one rename (readers see
//! the old files or the new ones, never a mix); the one before is kept for a manual
//! rollback. Either durable one by one (fsync of each file and directory), or staged for a
//! batch that one syncfs makes durable before the switches and one more after (issue 19).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

use super::{Files, generation_number};
use crate::durable::{
    DIR_MODE, PUBLIC_MODE, SECRET_MODE, create_dir, rename_staged, sync_dir, write_new,
    write_new_unsynced,
};
use crate::store::Generation;
use crate::types::CertName;

/// The new `live` link before it is renamed over the old one (a killed run's is removed
/// by the next lock holder, like every temp file).
const TMP_LINK: &str = "live.certctl-tmp";

impl Files {
    /// Writes `generation` into `gN`, N after the live one (an unfinished `gN` a killed run
    /// left is removed first); with `sync`, every file and the directory are fsynced. Returns
    /// N's directory name. Nothing points to it yet; on error it is removed.
    pub(super) fn write_generation(
        &self,
        name: &CertName,
        generation: &Generation,
        sync: bool,
    ) -> anyhow::Result<String> {
        let dir = self.cert_dir(name);
        create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let current = fs::read_link(dir.join("live"))
            .ok()
            .and_then(|t| generation_number(&t));
        let gen_name = format!("g{}", current.map_or(1, |n| n + 1));
        let gen_dir = dir.join(&gen_name);
        if gen_dir.exists() {
            fs::remove_dir_all(&gen_dir)
                .with_context(|| format!("removing the unfinished {}", gen_dir.display()))?;
        }
        let result = (|| -> io::Result<()> {
            fs::create_dir(&gen_dir)?;
            fs::set_permissions(&gen_dir, fs::Permissions::from_mode(DIR_MODE))?;
            for (file, data, mode) in [
                ("key.pem", generation.key_pem.as_bytes(), SECRET_MODE),
                ("cert.pem", generation.cert_pem.as_bytes(), PUBLIC_MODE),
                ("chain.pem", generation.chain_pem.as_bytes(), PUBLIC_MODE),
                (
                    "fullchain.pem",
                    generation.fullchain_pem.as_bytes(),
                    PUBLIC_MODE,
                ),
                ("meta.json", &generation.meta, PUBLIC_MODE),
            ] {
                match sync {
                    true => write_new(&gen_dir.join(file), data, mode)?,
                    false => write_new_unsynced(&gen_dir.join(file), data, mode)?,
                }
            }
            if sync {
                sync_dir(&gen_dir)?;
            }
            // the link that `switch` renames over `live`, made now: in a batch, every
            // creation comes before the renames that free inodes (ext4 without a journal
            // skips recently freed inodes one by one when it allocates)
            let tmp_link = dir.join(TMP_LINK);
            let _ = fs::remove_file(&tmp_link);
            std::os::unix::fs::symlink(&gen_name, &tmp_link)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&gen_dir);
            return Err(e)
                .with_context(|| format!("storing the new certificate under {}", dir.display()));
        }
        Ok(gen_name)
    }

    /// Points `live` at `gen_name` in one rename (the link `write_generation` made renamed
    /// over it); with `sync`, the certificate's directory is fsynced after. On error `live`
    /// is unchanged and the generation is removed.
    pub(super) fn switch(&self, name: &CertName, gen_name: &str, sync: bool) -> anyhow::Result<()> {
        let dir = self.cert_dir(name);
        let result =
            rename_staged(&dir.join(TMP_LINK), &dir.join("live")).and_then(|()| match sync {
                true => sync_dir(&dir),
                false => Ok(()),
            });
        if let Err(e) = result {
            self.remove_generation(name, gen_name);
            return Err(e)
                .with_context(|| format!("storing the new certificate under {}", dir.display()));
        }
        Ok(())
    }

    /// Removes a generation written but never made live, and its link.
    pub(super) fn remove_generation(&self, name: &CertName, gen_name: &str) {
        let dir = self.cert_dir(name);
        let _ = fs::remove_file(dir.join(TMP_LINK));
        let _ = fs::remove_dir_all(dir.join(gen_name));
    }

    /// Keeps the live generation and the one before it (a manual rollback); drops older ones.
    pub(super) fn prune(&self, name: &CertName) {
        let dir = self.cert_dir(name);
        let Some(live) = fs::read_link(dir.join("live"))
            .ok()
            .and_then(|t| generation_number(&t))
        else {
            return;
        };
        prune_below(&dir, live.saturating_sub(1));
    }
}

/// Removes every generation of `dir` numbered below `keep`.
fn prune_below(dir: &Path, keep: u64) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if generation_number(&entry.path()).is_some_and(|n| n < keep) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::types::CertName;

    /// A self-signed certificate for `name` and its key: (key PEM, chain, info).
    fn issued(name: &CertName) -> (String, crate::pem::Chain, crate::pem::CertInfo) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let chain = crate::pem::Chain::parse(&params.self_signed(&key).unwrap().pem()).unwrap();
        let info = crate::pem::cert_info(&chain.leaf).unwrap();
        (key.serialize_pem(), chain, info)
    }

    /// The serial `name` reads as live, after checking that its key, certificate and meta
    /// all come from one generation.
    fn live_serial(store: &Store, name: &CertName) -> String {
        let files = store.live_files(name).unwrap();
        let expected = crate::pem::Expected {
            names: None,
            now: None,
            issuer_in_chain: false,
        };
        crate::pem::check_chain(&files.chain, &files.key_pem, expected).expect("key and cert");
        let info = crate::pem::cert_info(&files.chain.leaf).unwrap();
        let meta = store.lineage(name).unwrap().unwrap().info.serial;
        assert_eq!(meta, info.serial, "meta.json of another generation");
        info.serial
    }

    #[test]
    fn the_new_link_is_a_temp_file_for_the_next_lock_holder() {
        assert!(super::TMP_LINK.contains(crate::durable::TMP_MARK));
    }

    #[test]
    fn a_batch_stopped_between_its_phases_reads_old_or_new_never_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = Store::files(&state);
        store.check_writable().unwrap();
        let names: Vec<CertName> = ["a.test", "b.test", "c.test"]
            .iter()
            .map(|n| CertName::parse(n).unwrap())
            .collect();
        let mut old = Vec::new();
        for name in &names {
            let (key, chain, info) = issued(name);
            store.save_generation(name, &key, &chain, &info).unwrap();
            let settings = serde_json::json!({
                "domains": [name.as_str()],
                "key_type": "ec256",
                "server": "local",
                "challenge": {"kind": "stateless"},
            });
            store
                .save_settings(name, &serde_json::from_value(settings).unwrap())
                .unwrap();
            old.push(info.serial);
        }
        // phase 1 done, then stopped: every certificate reads as before
        let mut new = Vec::new();
        let mut staged = Vec::new();
        for name in &names {
            let (key, chain, info) = issued(name);
            staged.push(store.stage_generation(name, &key, &chain, &info).unwrap());
            new.push(info.serial);
        }
        for (name, serial) in names.iter().zip(&old) {
            assert_eq!(
                &live_serial(&store, name),
                serial,
                "{name} before any switch"
            );
        }
        // phases 2 and 3 stopped after two switches: those two new, the third old
        store.flush().unwrap();
        store.switch_live(&staged[0]).unwrap();
        store.switch_live(&staged[1]).unwrap();
        assert_eq!(live_serial(&store, &names[0]), new[0]);
        assert_eq!(live_serial(&store, &names[1]), new[1]);
        assert_eq!(live_serial(&store, &names[2]), old[2]);
        // a new process (the next run) stores the third over the unswitched leftover
        drop(store);
        let store = Store::files(&state);
        let (key, chain, info) = issued(&names[2]);
        store
            .save_generation(&names[2], &key, &chain, &info)
            .unwrap();
        assert_eq!(live_serial(&store, &names[2]), info.serial);
        // the previous generation is kept, older ones dropped
        store.prune_generations(&names[0]);
        let cert_dir = state.join("certs/a.test");
        for (g, kept) in [("g1", true), ("g2", true)] {
            assert_eq!(cert_dir.join(g).is_dir(), kept, "{g}");
        }
        let (key, chain, info) = issued(&names[0]);
        let third = store
            .stage_generation(&names[0], &key, &chain, &info)
            .unwrap();
        store.flush().unwrap();
        store.switch_live(&third).unwrap();
        store.prune_generations(&names[0]);
        assert!(!cert_dir.join("g1").exists(), "g1 outlived two renewals");
        assert!(cert_dir.join("g2").is_dir() && cert_dir.join("g3").is_dir());
        assert_eq!(live_serial(&store, &names[0]), info.serial);
    }
}
