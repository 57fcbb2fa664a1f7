//! Metrics for Prometheus in node_exporter's textfile-collector format: per certificate its
//! expiry, whether renewal is due, its last success and failures, a pending deploy; per run
//! its duration and time. Rendering is pure; the file is written atomically (a collector
//! never reads half of it).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::health::Health;

/// The run that writes the metrics: when it started and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub timestamp: i64,
    pub duration: Duration,
}

/// The textfile for `certs` (and the run, when one wrote it).
pub fn render(certs: &[Health], run: Option<Run>) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per_cert = |value: &dyn Fn(&Health) -> Option<String>| -> Vec<(String, String)> {
        certs
            .iter()
            .filter_map(|h| {
                value(h).map(|v| (format!("{{name=\"{}\"}}", escape(h.name.as_str())), v))
            })
            .collect()
    };
    family(
        "certctl_certificate_not_after_seconds",
        "gauge",
        "When the stored certificate expires (Unix time).",
        per_cert(&|h| h.info.as_ref().map(|i| i.not_after.to_string())),
    );
    family(
        "certctl_certificate_renewal_due",
        "gauge",
        "1 when the certificate is due for renewal now.",
        per_cert(&|h| h.info.as_ref().map(|_| u8::from(h.renewal_due).to_string())),
    );
    family(
        "certctl_renewal_last_success_timestamp_seconds",
        "gauge",
        "When a renewal (or the request) last succeeded (Unix time).",
        per_cert(&|h| h.status.last_success.map(|t| t.to_string())),
    );
    family(
        "certctl_renewal_last_failure_timestamp_seconds",
        "gauge",
        "When a renewal last failed (Unix time).",
        per_cert(&|h| h.status.last_failure.map(|t| t.to_string())),
    );
    family(
        "certctl_renewal_consecutive_failures",
        "gauge",
        "Failed renewals since the last success.",
        per_cert(&|h| Some(h.status.consecutive_failures.to_string())),
    );
    family(
        "certctl_renewal_failures_total",
        "counter",
        "Failed renewals of the certificate, ever.",
        per_cert(&|h| Some(h.status.failures_total.to_string())),
    );
    family(
        "certctl_deploy_pending",
        "gauge",
        "1 when the bundle in the ssl directory is missing or not the stored certificate.",
        per_cert(&|h| Some(u8::from(h.deploy_pending).to_string())),
    );
    family(
        "certctl_certificate_damaged",
        "gauge",
        "1 when the stored certificate's files are damaged.",
        per_cert(&|h| Some(u8::from(!h.problems.is_empty()).to_string())),
    );
    if let Some(run) = run {
        family(
            "certctl_run_duration_seconds",
            "gauge",
            "How long the last certctl run took.",
            vec![(String::new(), format!("{:.3}", run.duration.as_secs_f64()))],
        );
        family(
            "certctl_run_timestamp_seconds",
            "gauge",
            "When the last certctl run started (Unix time).",
            vec![(String::new(), run.timestamp.to_string())],
        );
    }
    out
}

/// Writes the textfile atomically (0644: node_exporter reads it as another user).
pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::durable::write_atomic(path, text.as_bytes(), crate::durable::PUBLIC_MODE)
        .with_context(|| format!("writing the metrics file {}", path.display()))
}

/// A label value as the exposition format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pem::CertInfo;
    use crate::store::RenewalStatus;
    use crate::types::CertName;

    #[test]
    fn every_family_has_help_and_type_and_one_sample_per_certificate() {
        let health = Health {
            name: CertName::parse("mon-app.fr").unwrap(),
            domains: vec!["mon-app.fr".into()],
            info: Some(CertInfo {
                serial: "0a".into(),
                not_before: 100,
                not_after: 200,
                names: vec![],
                issuer: String::new(),
            }),
            renewal_due: true,
            status: RenewalStatus::default().after(150, Some("boom".into())),
            deploy_pending: false,
            problems: vec![],
        };
        let text = render(
            &[health],
            Some(Run {
                timestamp: 160,
                duration: Duration::from_millis(1500),
            }),
        );
        assert!(text.contains("certctl_certificate_not_after_seconds{name=\"mon-app.fr\"} 200\n"));
        assert!(text.contains("certctl_certificate_renewal_due{name=\"mon-app.fr\"} 1\n"));
        assert!(text.contains("certctl_renewal_failures_total{name=\"mon-app.fr\"} 1\n"));
        assert!(text.contains("# TYPE certctl_renewal_failures_total counter\n"));
        assert!(text.contains("certctl_run_duration_seconds 1.500\n"));
        assert!(
            !text.contains("certctl_renewal_last_success_timestamp_seconds{"),
            "no sample for a success that never happened"
        );
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
