//! `certctl check [NAME...]`: a Nagios/Icinga plugin. Gathers each certificate's health,
//! probes the proxies given, and prints one status line with performance data (or JSON),
//! exiting 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Reads only; writes nothing but the
//! metrics file when asked.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::CheckArgs;
use crate::deploy::probe::{self, Endpoint};
use crate::error::{BadInput, ExitWith};
use crate::health::{self, Health};
use crate::issue::now;
use crate::settings::Global;

const DAY: i64 = 86_400;
/// How long one probe may take, connect to certificate.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Monitoring states, in order of gravity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Ok = 0,
    Warning = 1,
    Unknown = 3,
    Critical = 2,
}

impl State {
    fn code(self) -> i32 {
        self as i32
    }

    fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    /// The graver of two states (CRITICAL over UNKNOWN over WARNING over OK).
    fn worst(self, other: State) -> State {
        let rank = |s: State| match s {
            State::Ok => 0,
            State::Warning => 1,
            State::Unknown => 2,
            State::Critical => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// One certificate's verdict, as `--json` prints it (stable field names).
#[derive(Debug, Serialize)]
struct Verdict {
    name: String,
    status: State,
    days_left: Option<f64>,
    warning_days: f64,
    critical_days: f64,
    /// Why it is not OK, one phrase each.
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct Summary<'a> {
    status: State,
    code: i32,
    message: &'a str,
    certificates: &'a [Verdict],
}

pub async fn run(global: &Global, args: CheckArgs) -> anyhow::Result<()> {
    // 1. the thresholds and the proxies to probe; bad input is UNKNOWN
    let started = Instant::now();
    if args.critical > args.warning {
        return Err(BadInput::new(format!(
            "--critical {} is above --warning {}: CRITICAL must be the nearer expiry",
            args.critical, args.warning
        ))
        .into());
    }
    let endpoints = args
        .probes
        .iter()
        .map(|raw| Endpoint::parse(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BadInput::new)?;

    // 2. every certificate's health, and what each proxy serves for it
    let (store, bundles) = super::open(global)?;
    let names = super::selected_names(global, &store, &args.names)?;
    let now = now();
    let healths = health::gather(&store, &bundles, &names, now);
    let verdicts: Vec<Verdict> = healths
        .iter()
        .map(|h| verdict(h, &args, &endpoints, &store, now))
        .collect();

    // 3. the status line (or JSON), the metrics file, the exit code
    let state = verdicts.iter().fold(State::Ok, |s, v| s.worst(v.status));
    let message = message(state, &verdicts);
    if args.json {
        let summary = Summary {
            status: state,
            code: state.code(),
            message: &message,
            certificates: &verdicts,
        };
        super::print_stdout(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        super::print_stdout(&format!("{message}\n"))?;
    }
    if let Some(path) = &args.metrics_file {
        let run = crate::metrics::Run {
            timestamp: now,
            duration: started.elapsed(),
        };
        crate::metrics::write(path, &crate::metrics::render(&healths, Some(run)))?;
    }
    match state {
        State::Ok => Ok(()),
        other => Err(ExitWith(other.code()).into()),
    }
}

/// The thresholds for a certificate of `lifetime` seconds: the given days, but at most a
/// sixth and a twelfth of the lifetime (90 days: 14 and 7; 6 days: 1 and 0.5).
fn thresholds(args: &CheckArgs, lifetime: Option<i64>) -> (f64, f64) {
    let (warning, critical) = (f64::from(args.warning), f64::from(args.critical));
    match lifetime {
        Some(secs) if secs > 0 => {
            let days = secs as f64 / DAY as f64;
            (warning.min(days / 6.0), critical.min(days / 12.0))
        }
        _ => (warning, critical),
    }
}

fn verdict(
    h: &Health,
    args: &CheckArgs,
    endpoints: &[Endpoint],
    store: &crate::store::Store,
    now: i64,
) -> Verdict {
    let (warning_days, critical_days) = thresholds(args, h.lifetime());
    let days_left = h.seconds_left(now).map(|s| s as f64 / DAY as f64);
    let mut status = State::Ok;
    let mut reasons = Vec::new();
    let mut note = |state: State, reason: String| {
        status = status.worst(state);
        reasons.push(reason);
    };
    if !h.problems.is_empty() {
        note(
            State::Critical,
            format!("damaged: {}", h.problems.join("; ")),
        );
    }
    match days_left {
        Some(d) if d <= 0.0 => note(State::Critical, "expired".into()),
        Some(d) if d < critical_days => note(State::Critical, format!("expires in {d:.1} days")),
        Some(d) if d < warning_days => note(State::Warning, format!("expires in {d:.1} days")),
        _ => {}
    }
    if h.status.failing() {
        note(
            State::Warning,
            format!(
                "the last {} renewal attempt(s) failed: {}",
                h.status.consecutive_failures,
                h.status
                    .last_error
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        );
    }
    if h.deploy_pending {
        note(
            State::Critical,
            "the bundle in the ssl directory is not the stored certificate (`certctl concat` writes it)".into(),
        );
    }
    if !endpoints.is_empty() {
        let stored = store.live_leaf(&h.name).ok();
        let sni = h
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| h.name.to_string());
        for endpoint in endpoints {
            match (probe::served_leaf(endpoint, &sni, PROBE_TIMEOUT), &stored) {
                (Ok(served), Some(stored)) if &served == stored => {}
                (Ok(served), _) => {
                    let what = crate::pem::cert_info(&served)
                        .map(|i| match &h.info {
                            // another serial that expires no later: an older one (issued
                            // within the same second, both dates can be equal)
                            Some(mine) if i.not_after <= mine.not_after => format!(
                                "an older certificate (serial {}, expires {}): renewed but not reloaded?",
                                i.serial,
                                crate::output::date(i.not_after)
                            ),
                            _ => format!("another certificate (serial {})", i.serial),
                        })
                        .unwrap_or_else(|_| "a certificate certctl cannot read".into());
                    note(
                        State::Critical,
                        format!("{} serves {what} for {sni}", endpoint.as_str()),
                    );
                }
                (Err(e), _) => note(
                    State::Critical,
                    format!("probing {}: {e:#}", endpoint.as_str()),
                ),
            }
        }
    }
    Verdict {
        name: h.name.to_string(),
        status,
        days_left,
        warning_days,
        critical_days,
        reasons,
    }
}

/// `CERTCTL STATE - what | perfdata`: the reasons of the gravest certificates first.
fn message(state: State, verdicts: &[Verdict]) -> String {
    let mut text = format!("CERTCTL {}", state.word());
    let troubled: Vec<String> = verdicts
        .iter()
        .filter(|v| v.status != State::Ok)
        .map(|v| format!("{}: {}", v.name, v.reasons.join(", ")))
        .collect();
    let soonest = verdicts
        .iter()
        .filter_map(|v| v.days_left.map(|d| (d, v)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    if troubled.is_empty() {
        match soonest {
            Some((d, v)) => text.push_str(&format!(
                " - {} certificate(s), the soonest expiry is {} in {d:.1} days",
                verdicts.len(),
                v.name
            )),
            None => text.push_str(&format!(" - {} certificate(s)", verdicts.len())),
        }
    } else {
        text.push_str(&format!(" - {}", troubled.join("; ")));
    }
    let mut perf = Vec::new();
    if let Some((d, v)) = soonest {
        perf.push(format!(
            "days_left={d:.2};{:.2};{:.2}",
            v.warning_days, v.critical_days
        ));
    }
    for v in verdicts {
        if let Some(d) = v.days_left {
            perf.push(format!(
                "'days_left_{}'={d:.2};{:.2};{:.2}",
                v.name, v.warning_days, v.critical_days
            ));
        }
    }
    if !perf.is_empty() {
        text.push_str(" | ");
        text.push_str(&perf.join(" "));
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(warning: u32, critical: u32) -> CheckArgs {
        CheckArgs {
            names: vec![],
            warning,
            critical,
            probes: vec![],
            json: false,
            metrics_file: None,
        }
    }

    #[test]
    fn thresholds_shrink_for_short_lived_certificates() {
        assert_eq!(thresholds(&args(14, 7), Some(90 * DAY)), (14.0, 7.0));
        assert_eq!(thresholds(&args(14, 7), Some(6 * DAY)), (1.0, 0.5));
        assert_eq!(thresholds(&args(14, 7), None), (14.0, 7.0));
    }

    #[test]
    fn critical_outranks_unknown_outranks_warning() {
        assert_eq!(State::Warning.worst(State::Critical), State::Critical);
        assert_eq!(State::Unknown.worst(State::Warning), State::Unknown);
        assert_eq!(State::Critical.worst(State::Unknown), State::Critical);
        assert_eq!(State::Ok.worst(State::Ok), State::Ok);
    }

    #[test]
    fn the_status_line_has_performance_data() {
        let v = Verdict {
            name: "mon-app.fr".into(),
            status: State::Warning,
            days_left: Some(10.0),
            warning_days: 14.0,
            critical_days: 7.0,
            reasons: vec!["expires in 10.0 days".into()],
        };
        let line = message(State::Warning, &[v]);
        assert_eq!(
            line,
            "CERTCTL WARNING - mon-app.fr: expires in 10.0 days | days_left=10.00;14.00;7.00 'days_left_mon-app.fr'=10.00;14.00;7.00"
        );
    }
}
