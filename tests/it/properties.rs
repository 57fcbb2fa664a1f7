//! Property tests (proptest) of the two things every run depends on: the name parser (what
//! it accepts is canonical, stays inside its directory and parses again to itself) and the
//! renewal decision (monotonic in time, never lets a certificate expire, total on any
//! input a damaged meta.json could hold). Pure library calls: no lab, no binary.

use std::path::{Component, Path};

use certctl::pem::{AriState, Decision, decide, renewal_due, renewal_time};
use certctl::types::{CertName, DomainName};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Raw names: anything, domain-like ASCII with the usual mistakes, and Unicode letters.
fn raw_name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9.*:/_ \\\\-]{0,40}",
        "[a-zé\u{e0}-\u{ff}\u{430}-\u{44f}\u{4e00}-\u{4e10}.-]{1,30}",
        "(xn--[a-z0-9-]{0,12}\\.){1,3}[a-z]{2,4}",
        "([a-z0-9-]{1,70}\\.){1,6}[a-z]{1,10}\\.?",
    ]
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

/// Well-formed names: LDH labels, minus those starting `xn--`, which are well-formed only
/// when what follows decodes as punycode (`xn--0` does not, and is refused).
fn valid_name() -> impl Strategy<Value = String> {
    let label = label().prop_filter("an xn-- label must decode as punycode", |l| {
        !l.starts_with("xn--")
    });
    (prop::collection::vec(label, 1..5), "[a-z]{2,6}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

/// Length of a domain as a certificate name (without a wildcard's `*.`).
fn s_len(d: &DomainName) -> usize {
    d.as_str().trim_start_matches("*.").len()
}

/// The rules every accepted name follows.
fn check_canonical(raw: &str, d: &DomainName) -> Result<(), TestCaseError> {
    let s = d.as_str();
    let host = s.strip_prefix("*.").unwrap_or(s);
    prop_assert!(host.len() <= 253, "{raw:?} -> {s:?}");
    let labels: Vec<&str> = host.split('.').collect();
    prop_assert!(labels.len() >= 2, "{raw:?} -> {s:?}");
    for l in labels {
        prop_assert!((1..=63).contains(&l.len()), "{raw:?} -> {s:?}");
        prop_assert!(
            l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{raw:?} -> {s:?}"
        );
        prop_assert!(!l.starts_with('-') && !l.ends_with('-'), "{raw:?} -> {s:?}");
    }
    Ok(())
}

/// A certificate name never leaves the directory it is joined to.
fn check_stays_inside(name: &CertName) -> Result<(), TestCaseError> {
    let joined = Path::new("/var/lib/certctl/certs").join(name.as_str());
    prop_assert!(
        joined.starts_with("/var/lib/certctl/certs/"),
        "{name:?} escapes"
    );
    let tail: Vec<Component> = Path::new(name.as_str()).components().collect();
    prop_assert_eq!(tail.len(), 1, "{:?} is one plain component", name);
    prop_assert!(matches!(tail[0], Component::Normal(_)), "{name:?}");
    prop_assert!(!name.as_str().starts_with('.'), "{name:?} is hidden");
    Ok(())
}

/// 4000 cases per property; failures found are kept in properties.proptest-regressions
/// beside this file and run first every time (proptest's default would look for
/// tests/proptest-regressions/properties.txt, because tests/it/ holds a main.rs).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(4000)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn accepted_names_are_canonical_and_parse_again_to_themselves(raw in raw_name()) {
        if let Ok(d) = DomainName::parse(&raw) {
            check_canonical(&raw, &d)?;
            prop_assert_eq!(DomainName::parse(d.as_str()), Ok(d.clone()));
            prop_assert_eq!(DomainName::parse_local(d.as_str()), Ok(d.clone()));
            // a certificate name holds 200 bytes, a domain name 253: a longer first name
            // needs --name, and says so, rather than make a name no command would list
            match CertName::from_domain(&d) {
                Ok(name) => {
                    prop_assert_eq!(CertName::parse(name.as_str()), Ok(name.clone()));
                    check_stays_inside(&name)?;
                }
                Err(e) => prop_assert!(s_len(&d) > 200 && e.contains("--name"), "{e}"),
            }
        }
    }

    #[test]
    fn local_ca_names_make_usable_certificate_names(raw in prop_oneof![
        raw_name(),
        any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
        "[a-zA-Z0-9-]{1,64}",
    ]) {
        if let Ok(d) = DomainName::parse_local(&raw) {
            let s = d.as_str();
            prop_assert!(!s.is_empty());
            prop_assert!(
                !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '\\'),
                "{raw:?} -> {s:?}"
            );
            prop_assert_eq!(DomainName::parse_local(s), Ok(d.clone()));
            match CertName::from_domain(&d) {
                Ok(name) => {
                    prop_assert_eq!(CertName::parse(name.as_str()), Ok(name.clone()), "from {:?}", raw);
                    check_stays_inside(&name)?;
                }
                Err(e) => prop_assert!(s_len(&d) > 200 && e.contains("--name"), "{e}"),
            }
        }
    }

    #[test]
    fn well_formed_names_are_accepted_lowercased(name in valid_name(), upper in any::<bool>()) {
        let raw = if upper { name.to_uppercase() } else { name.clone() };
        match DomainName::parse(&raw) {
            Ok(d) => prop_assert_eq!(d.as_str(), name.as_str()),
            // a numeric last label reads as an IP address; more than 253 bytes is too long
            Err(e) => prop_assert!(
                name.len() > 253 || name.rsplit('.').next().is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit())),
                "{raw:?}: {e}"
            ),
        }
    }

    #[test]
    fn certificate_names_never_escape(raw in prop_oneof![any::<String>(), "[a-z0-9._/-]{0,12}"]) {
        if let Ok(name) = CertName::parse(&raw) {
            check_stays_inside(&name)?;
        }
    }

    #[test]
    fn renewal_is_monotonic_in_time(
        not_before in any::<i64>(),
        not_after in any::<i64>(),
        t1 in any::<i64>(),
        t2 in any::<i64>(),
    ) {
        let (early, late) = (t1.min(t2), t1.max(t2));
        if renewal_due(early, not_before, not_after) {
            prop_assert!(renewal_due(late, not_before, not_after));
        }
    }

    #[test]
    fn renewal_falls_inside_the_lifetime(
        not_before in -100_000_000_000i64..100_000_000_000,
        lifetime in 0i64..10 * 365 * 86_400,
    ) {
        let not_after = not_before + lifetime;
        let at = renewal_time(not_before, not_after);
        prop_assert!(at >= not_before && at <= not_after);
        // at least a third of the lifetime before expiry (half under ten days)
        prop_assert!(not_after - at >= lifetime / 3);
        prop_assert!(renewal_due(not_after, not_before, not_after));
    }

    #[test]
    fn the_decision_is_total_and_never_lets_a_certificate_expire(
        now in any::<i64>(),
        not_before in any::<i64>(),
        not_after in any::<i64>(),
        ari in proptest::option::of((any::<i64>(), any::<i64>(), 0.0f64..1.0, any::<u64>())),
        force in any::<bool>(),
    ) {
        let ari = ari.map(|(start, end, fraction, retry)| AriState::new(start, end, fraction, now, retry));
        let decision = decide(now, not_before, not_after, ari.as_ref(), force);
        if force || now >= not_after {
            prop_assert_eq!(decision, Decision::Due);
        }
        if ari.is_none() {
            prop_assert_eq!(
                decision == Decision::Due,
                force || renewal_due(now, not_before, not_after)
            );
            prop_assert_ne!(decision, Decision::AskCa);
        }
    }

    #[test]
    fn the_ari_point_lies_in_the_window_and_retry_after_is_clamped(
        start in -100_000_000_000i64..100_000_000_000,
        span in 0i64..100 * 86_400,
        fraction in 0.0f64..1.0,
        now in -100_000_000_000i64..100_000_000_000,
        retry in any::<u64>(),
    ) {
        let ari = AriState::new(start, start + span, fraction, now, retry);
        prop_assert!(ari.renew_at >= start && ari.renew_at <= start + span);
        let waited = ari.next_check - now;
        prop_assert!((60..=8 * 3600).contains(&waited), "{waited}");
    }
}
