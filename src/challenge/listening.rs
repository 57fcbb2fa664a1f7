//! A listening socket served by a task, that stops listening the moment its owner is
//! dropped. Aborting the task alone closes the socket only when the runtime next drops the
//! task, later: a run that released its lock meanwhile let the next certctl, which waited for
//! that lock, find the address still taken ("already in use"). So the owner keeps a
//! duplicate of the socket and shuts it down on drop: the socket leaves the LISTEN state at
//! once (the same address can be listened on again, both sides having SO_REUSEADDR, which
//! tokio sets), and the task, aborted too, closes it for good.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// `serve(listener)` running as a task; dropping this stops it and the listening at once.
pub struct Serving {
    socket: OwnedFd,
    task: JoinHandle<()>,
}

impl Serving {
    pub fn spawn<F>(
        listener: TcpListener,
        serve: impl FnOnce(TcpListener) -> F,
    ) -> std::io::Result<Self>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let socket = listener.as_fd().try_clone_to_owned()?;
        let task = tokio::spawn(serve(listener));
        Ok(Self { socket, task })
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // SAFETY: shutdown(2) on a descriptor this value owns; no memory is involved.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR) };
        self.task.abort();
    }
}
