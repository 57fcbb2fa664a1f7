//! `--profile` and `--preferred-chain` as typed values: what they may hold, and that they
//! apply to ACME CAs only. Whether the CA offers the profile is checked against its
//! directory by the command, which has the network.

use crate::cli::CaChoiceArgs;
use crate::error::BadInput;

/// The profile and preferred chain given on the command line (None: not given, or
/// `--profile ''`, which goes back to the CA's default).
pub fn ca_choices(
    args: &CaChoiceArgs,
    local: bool,
) -> Result<(Option<String>, Option<String>), BadInput> {
    if local && (args.profile.is_some() || args.preferred_chain.is_some()) {
        return Err(BadInput::new(
            "--profile and --preferred-chain apply to ACME CAs; the local CA (--server local) has one profile and one chain",
        ));
    }
    let profile = match args.profile.as_deref() {
        None | Some("") => None,
        Some(p)
            if p.len() <= 64
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Some(p.to_owned())
        }
        Some(p) => {
            return Err(BadInput::new(format!(
                "--profile {p:?} is not a profile name (letters, digits, '-', '_', '.'), e.g. --profile tlsserver"
            )));
        }
    };
    let preferred_chain = match args.preferred_chain.as_deref() {
        None => None,
        Some(cn) if cn.trim().is_empty() || cn.chars().any(char::is_control) => {
            return Err(BadInput::new(format!(
                "--preferred-chain {cn:?} names no certificate: give the common name of the \
                 root you want at the top, e.g. --preferred-chain \"ISRG Root X1\" (leave the \
                 flag out for the CA's default chain)"
            )));
        }
        Some(cn) => Some(cn.trim().to_owned()),
    };
    Ok((profile, preferred_chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(profile: Option<&str>, chain: Option<&str>) -> CaChoiceArgs {
        CaChoiceArgs {
            profile: profile.map(str::to_owned),
            preferred_chain: chain.map(str::to_owned),
        }
    }

    #[test]
    fn choices_are_checked_before_any_use() {
        assert_eq!(ca_choices(&args(None, None), false).unwrap(), (None, None));
        assert_eq!(
            ca_choices(&args(Some("shortlived"), Some(" ISRG Root X1 ")), false).unwrap(),
            (Some("shortlived".into()), Some("ISRG Root X1".into()))
        );
        assert_eq!(
            ca_choices(&args(Some(""), None), false).unwrap(),
            (None, None)
        );
        assert!(ca_choices(&args(Some("two words"), None), false).is_err());
        assert!(ca_choices(&args(None, Some("")), false).is_err());
        assert!(ca_choices(&args(None, Some("  ")), false).is_err());
        assert!(ca_choices(&args(Some("classic"), None), true).is_err());
    }
}
