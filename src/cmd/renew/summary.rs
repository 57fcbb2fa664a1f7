//! The last line `renew` prints when anything failed: how many renewed, which failed, which
//! hooks, proxies or pushes failed after a renewal; each name once.

use super::{PENDING, POST_HOOK};

/// `2 renewed (1 with a failed hook or proxy: b.test), 1 failed: renewal failed for: a.test`
pub(super) fn summary_line(
    failures: &[(String, anyhow::Error)],
    renewed: usize,
    after: &[(String, anyhow::Error)],
) -> String {
    fn once<'a>(names: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for n in names {
            if !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        out
    }
    let failed = once(failures.iter().map(|(n, _)| n));
    let deploys = once(
        after
            .iter()
            .map(|(n, _)| n)
            .filter(|n| *n != POST_HOOK && !n.starts_with(PENDING)),
    );
    let pending: Vec<&str> = once(after.iter().map(|(n, _)| n))
        .into_iter()
        .filter_map(|n| n.strip_prefix(PENDING))
        .collect();
    let mut line = format!("{renewed} renewed");
    if !deploys.is_empty() {
        line.push_str(&format!(
            " ({} with a failed hook or proxy: {})",
            deploys.len(),
            deploys.join(", ")
        ));
    }
    if after.iter().any(|(n, _)| n == POST_HOOK) {
        line.push_str("; post-hook failed");
    }
    if !pending.is_empty() {
        line.push_str(&format!(
            "; {} deploy(s) still pending: {}",
            pending.len(),
            pending.join(", ")
        ));
    }
    if !failed.is_empty() {
        line.push_str(&format!(
            ", {} failed: renewal failed for: {}",
            failed.len(),
            failed.join(", ")
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pem;
    use anyhow::anyhow;

    fn info() -> pem::CertInfo {
        pem::CertInfo {
            serial: "01".into(),
            not_before: 0,
            not_after: 0,
            names: vec![],
            issuer: String::new(),
        }
    }

    #[test]
    fn summary_counts_deploy_failures_apart_and_names_each_once() {
        let failures = vec![
            ("a.test".to_owned(), anyhow!("x")),
            ("a.test".to_owned(), anyhow!("y")),
        ];
        let renewed = [("b.test".to_owned(), info()), ("c.test".to_owned(), info())];
        let after = vec![
            ("b.test".to_owned(), anyhow!("haproxy")),
            ("b.test".to_owned(), anyhow!("hook")),
            (POST_HOOK.to_owned(), anyhow!("exit 1")),
        ];
        assert_eq!(
            summary_line(&failures, renewed.len(), &after),
            "2 renewed (1 with a failed hook or proxy: b.test); post-hook failed, 1 failed: renewal failed for: a.test"
        );
        assert_eq!(summary_line(&[], renewed.len(), &[]), "2 renewed");
    }
}
