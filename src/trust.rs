//! Who may have written what certctl trusts, checked the way sshd's StrictModes does before
//! root acts on it: what certctl reads as configuration (the config file, the state
//! directory) belongs to root or the running user and nobody else can write it; what it
//! writes into or runs (the ssl directory, a hook script) belongs to them and not everyone
//! can write it. Each refusal names the path, its owner and mode, and the command that
//! fixes it. Reads metadata only; never changes anything.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How strict a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Configuration: no write permission for group or others.
    Private,
    /// Written into or run: no write permission for others.
    NotWorldWritable,
}

/// Checks `path` (described as `what`, e.g. "config file") by `rule`; a path that does not
/// exist passes (whoever creates it decides its mode). Symlinks are followed: what counts is
/// what is read.
pub fn check(path: &Path, what: &str, rule: Rule) -> Result<(), String> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    check_meta(path, what, rule, meta.uid(), meta.mode(), effective_uid())
}

/// The decision, on the facts alone: `uid` and `mode` of `path`, `me` the running user.
pub fn check_meta(
    path: &Path,
    what: &str,
    rule: Rule,
    uid: u32,
    mode: u32,
    me: u32,
) -> Result<(), String> {
    let shown = path.display();
    let perms = mode & 0o7777;
    let facts = format!("owner {}, mode {perms:04o}", user_name(uid));
    let trusted_owner = if me == 0 {
        "root".to_owned()
    } else {
        format!("root or {}", user_name(me))
    };
    if uid != 0 && uid != me {
        return Err(format!(
            "{what} {shown} belongs to another user ({facts}); certctl only trusts what \
             {trusted_owner} owns: `chown {} {shown}`",
            if me == 0 {
                "root".to_owned()
            } else {
                me.to_string()
            }
        ));
    }
    let writable = match rule {
        Rule::Private => perms & 0o022,
        Rule::NotWorldWritable => perms & 0o002,
    };
    if writable != 0 {
        let who = match writable {
            0o022 => "group and others",
            0o020 => "its group",
            _ => "everyone",
        };
        let fix = match rule {
            Rule::Private => "go-w",
            Rule::NotWorldWritable => "o-w",
        };
        return Err(format!(
            "{what} {shown} is writable by {who} ({facts}); certctl does not trust it: \
             `chmod {fix} {shown}`"
        ));
    }
    Ok(())
}

/// The first word of a hook command when it names a file (it holds a '/'): the script the
/// shell will run, to be checked like the ssl directory.
pub fn hook_script(command: &str) -> Option<&Path> {
    let first = command
        .split_whitespace()
        .next()?
        .trim_matches(|c| c == '"' || c == '\'');
    first.contains('/').then(|| Path::new(first))
}

/// Checks the script a hook command runs, if it names one.
pub fn check_hook(kind: &str, command: &str) -> Result<(), String> {
    match hook_script(command) {
        Some(script) => check(
            script,
            &format!("the {kind} hook's script"),
            Rule::NotWorldWritable,
        ),
        None => Ok(()),
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `uid 1000 (alice)`, or `uid 1000` when the name is unknown.
fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 1024];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r with a live struct, a buffer and its length, and a result pointer.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    format!("uid {uid} ({})", name.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(rule: Rule, uid: u32, mode: u32, me: u32) -> Result<(), String> {
        check_meta(Path::new("/etc/x"), "config file", rule, uid, mode, me)
    }

    #[test]
    fn root_or_the_running_user_and_no_write_for_others() {
        assert!(decide(Rule::Private, 0, 0o100644, 0).is_ok());
        assert!(decide(Rule::Private, 1000, 0o100600, 1000).is_ok());
        assert!(decide(Rule::Private, 0, 0o100644, 1000).is_ok());
        let err = decide(Rule::Private, 1000, 0o100644, 0).unwrap_err();
        assert!(
            err.contains("belongs to another user") && err.contains("chown root /etc/x"),
            "{err}"
        );
        let err = decide(Rule::Private, 0, 0o100664, 0).unwrap_err();
        assert!(
            err.contains("writable by its group") && err.contains("mode 0664"),
            "{err}"
        );
        assert!(err.contains("`chmod go-w /etc/x`"), "{err}");
        let err = decide(Rule::Private, 0, 0o100666, 0).unwrap_err();
        assert!(err.contains("group and others"), "{err}");
        // an ssl directory may be group-writable (HAProxy's group), not world-writable
        assert!(decide(Rule::NotWorldWritable, 0, 0o40775, 0).is_ok());
        let err = decide(Rule::NotWorldWritable, 0, 0o41777, 0).unwrap_err();
        assert!(
            err.contains("everyone") && err.contains("chmod o-w"),
            "{err}"
        );
    }

    #[test]
    fn a_hook_names_a_script_when_its_first_word_is_a_path() {
        assert_eq!(
            hook_script("/usr/local/bin/reload.sh --now"),
            Some(Path::new("/usr/local/bin/reload.sh"))
        );
        assert_eq!(
            hook_script("'./concat.sh' && x"),
            Some(Path::new("./concat.sh"))
        );
        assert_eq!(hook_script("systemctl reload haproxy"), None);
        assert_eq!(hook_script("   "), None);
    }
}
