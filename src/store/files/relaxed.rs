//! This host's records of what it did (`pushed.json`: the serial each HAProxy was given;
//! `deployed.json`: the bundle file it wrote; `status.json`: how the last attempt went)
//! written without an fsync per certificate: a run over a thousand certificates would
//! otherwise spend most of its time in fsyncs. Losing one in a crash only means work done
//! again (the push sent again, the bundle compared in full) or an older status (a back-off
//! shorter than it should be), never a wrong certificate served. One syncfs when the backend is
//! dropped (the end of the command) makes the whole run's records durable.

use std::sync::atomic::Ordering;

use anyhow::Context;

use super::Files;
use crate::durable::{sync_fs, write_atomic_unsynced};

impl Files {
    pub(super) fn write_unsynced(
        &self,
        path: &std::path::Path,
        value: &[u8],
        mode: u32,
    ) -> anyhow::Result<()> {
        self.unsynced.store(true, Ordering::Relaxed);
        write_atomic_unsynced(path, value, mode)
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if self.unsynced.load(Ordering::Relaxed) {
            if let Err(e) = sync_fs(&self.state_dir) {
                crate::log::warn(format_args!(
                    "flushing {} to disk: {e}; a deploy record lost in a crash only means \
                     work done again",
                    self.state_dir.display()
                ));
            }
        }
    }
}
