//! Which process holds a listening TCP address, for the message when certctl cannot bind:
//! /proc/net/tcp{,6} give the listening socket's inode, /proc/<pid>/fd the process that has
//! it open. Best effort and read only: None when the system does not say (another user's
//! process, no /proc).

use std::fs;
use std::net::{IpAddr, SocketAddr};

/// "haproxy (pid 1234)" for the process listening on `addr`, when this user may see it.
pub fn holder(addr: SocketAddr) -> Option<String> {
    let inode = listening_inode(addr)?;
    let needle = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == needle.as_str()) {
                let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}

/// The inode of the socket listening on `addr` (or on the wildcard address of its port).
fn listening_inode(addr: SocketAddr) -> Option<u64> {
    let wanted = kernel_hex(addr.ip());
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ... inode (10th column); 0A is LISTEN
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let Some((ip, port)) = cols[1].split_once(':') else {
                continue;
            };
            let same_port = u16::from_str_radix(port, 16).is_ok_and(|p| p == addr.port());
            let same_ip = ip == wanted || ip.bytes().all(|b| b == b'0');
            if same_port && same_ip {
                return cols[9].parse().ok();
            }
        }
    }
    None
}

/// An address as /proc/net/tcp writes it: each 32-bit word in the host's (little-endian)
/// order, in hex.
fn kernel_hex(ip: IpAddr) -> String {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets
        .chunks(4)
        .map(|word| {
            let word: [u8; 4] = [word[0], word[1], word[2], word[3]];
            format!("{:08X}", u32::from_ne_bytes(word))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_listening_socket_is_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let found = holder(addr).expect("this process holds it");
        assert!(
            found.ends_with(&format!("(pid {})", std::process::id())),
            "{found}"
        );
        drop(listener);
        assert_eq!(holder(addr), None);
    }
}
