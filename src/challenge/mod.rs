//! Challenge solvers: what answers a CA's challenge, behind one trait (`Solver`), chosen per
//! identifier (`Solvers`), and the guard that takes down whatever was presented, on success,
//! failure or cancellation (`Guard`; `close` and `finish_cleanups` for a signal). Speaks no
//! ACME: the order flow (crate::acme) turns challenges into `Task`s. A new challenge type is
//! a new solver file and one arm in `Solvers::from_setting`.

pub mod dns01;
mod holder;
pub mod http01;
mod listening;
pub mod stateless;
pub mod tls_alpn;
pub mod webroot;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use http01::{Responder, Responders, Standalone};
pub use stateless::Stateless;
pub use tls_alpn::{AlpnResponders, TlsAlpn};
pub use webroot::Webroot;

use crate::settings::{CertConfig, Challenge};
use crate::types::DomainName;

/// The ACME challenge types a solver may answer (RFC 8555 §8, RFC 8737).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeType {
    Http01,
    Dns01,
    TlsAlpn01,
}

impl fmt::Display for ChallengeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        })
    }
}

/// What a certificate names and a challenge proves control of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Dns(DomainName),
    Ip(IpAddr),
}

impl From<&DomainName> for Identifier {
    fn from(name: &DomainName) -> Self {
        match name.as_str().parse() {
            Ok(ip) => Self::Ip(ip),
            Err(_) => Self::Dns(name.clone()),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => name.fmt(f),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

/// True for a token the CA may legitimately send: base64url, 1 to 256 characters.
pub fn valid_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A challenge token that passed `valid_token`: safe in a path and a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    pub fn parse(raw: &str) -> Option<Self> {
        valid_token(raw).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `token.thumbprint` (RFC 8555 §8.1): the HTTP-01 answer, and what the DNS-01 value and
/// the tls-alpn-01 digest derive from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuthorization(String);

impl KeyAuthorization {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the key authorization: the tls-alpn-01 acmeIdentifier (RFC 8737 §3).
    pub fn digest(&self) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    /// The DNS-01 TXT value: base64url of the digest, unpadded (RFC 8555 §8.4).
    pub fn dns_value(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.digest())
    }
}

/// One challenge to answer: for `identifier`, a challenge of type `challenge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub identifier: Identifier,
    pub challenge: ChallengeType,
    pub token: Token,
    pub key_authorization: KeyAuthorization,
}

/// What a solver's `present` and `cleanup` return.
pub type Pending<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Answers challenges of one type. `present` puts the answers in place before the CA is told
/// to validate; `cleanup` takes them away and must accept tasks that were never (or only
/// partly) presented. Both work on batches: every task of one order that this solver answers.
pub trait Solver: Send + Sync {
    fn challenge_type(&self) -> ChallengeType;
    fn present<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a>;
    fn cleanup<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a>;

    /// An order that may present through this solver started (`Guard::new`); a solver that
    /// sends the answers of concurrent orders together waits for it from now on.
    fn begin(&self) {}

    /// That order ended, its cleanup done: nobody waits for it any more.
    fn end(&self) {}

    /// Removes what an earlier run of this certificate placed and, killed, never removed
    /// (DNS records outlive the process; files and listeners do not need this).
    fn recover(&self) -> Pending<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Where a solver writes down what it is about to place, before placing it, and clears it
/// once removed: the certificate's entry in the state (`issue` keeps it in the store).
pub trait Journal: Send + Sync {
    fn read(&self) -> anyhow::Result<Option<Vec<u8>>>;
    /// Replaces the entry; None removes it.
    fn write(&self, value: Option<&[u8]>) -> anyhow::Result<()>;
}

/// What the solvers of one run share: one responder per address, one DNS-01 batcher per
/// setting (so the records of concurrent orders go out together).
#[derive(Default)]
pub struct Shared {
    pub responders: Responders,
    alpn: AlpnResponders,
    dns: dns01::Batchers,
}

/// The solvers of one certificate: one per identifier, a default for the others.
#[derive(Clone)]
pub struct Solvers {
    default: Arc<dyn Solver>,
    chosen: HashMap<Identifier, Arc<dyn Solver>>,
}

impl Solvers {
    pub fn new(default: Arc<dyn Solver>) -> Self {
        Self {
            default,
            chosen: HashMap::new(),
        }
    }

    /// `solver` answers for `identifier` instead of the default.
    pub fn with(mut self, identifier: Identifier, solver: Arc<dyn Solver>) -> Self {
        self.chosen.insert(identifier, solver);
        self
    }

    pub fn solver(&self, identifier: &Identifier) -> &Arc<dyn Solver> {
        self.chosen.get(identifier).unwrap_or(&self.default)
    }

    /// The solvers for a certificate's stored challenge settings: the default and one per
    /// name answered otherwise (one solver per distinct setting). A standalone responder is
    /// bound here (so a taken address fails before anything is sent to the CA), once per
    /// address for all the certificates of a run; a DNS-01 setting's key is read here.
    pub async fn from_setting(
        cert: &CertConfig,
        shared: &mut Shared,
        journal: Arc<dyn Journal>,
    ) -> anyhow::Result<Self> {
        let mut built: Vec<(&Challenge, Arc<dyn Solver>)> = Vec::new();
        let settings = std::iter::once(&cert.challenge).chain(cert.challenges.values());
        for setting in settings {
            if built.iter().any(|(s, _)| *s == setting) {
                continue;
            }
            let solver: Arc<dyn Solver> = match setting {
                Challenge::Standalone { http_addr } => {
                    Arc::new(Standalone::new(shared.responders.bind(*http_addr).await?))
                }
                Challenge::Webroot { webroot } => Arc::new(Webroot::new(webroot.clone())),
                Challenge::Stateless => Arc::new(Stateless),
                Challenge::TlsAlpn01 { tls_alpn_addr } => {
                    Arc::new(TlsAlpn::new(shared.alpn.bind(*tls_alpn_addr).await?))
                }
                Challenge::Dns01(dns) => {
                    let names: Vec<&str> = cert.domains.iter().map(DomainName::as_str).collect();
                    let all = names.join(",");
                    Arc::new(dns01::Dns01::new(dns, &mut shared.dns, journal.clone(), all).await?)
                }
            };
            built.push((setting, solver));
        }
        let solver_of = |setting: &Challenge| {
            built
                .iter()
                .find(|(s, _)| *s == setting)
                .map(|(_, solver)| solver.clone())
        };
        let default = solver_of(&cert.challenge).ok_or_else(|| anyhow::anyhow!("no solver"))?;
        let mut solvers = Self::new(default);
        for (name, setting) in &cert.challenges {
            if let Some(solver) = solver_of(setting) {
                solvers = solvers.with(Identifier::from(name), solver);
            }
        }
        Ok(solvers)
    }

    /// Each distinct solver once.
    fn distinct(&self) -> Vec<Arc<dyn Solver>> {
        let mut all: Vec<Arc<dyn Solver>> = vec![self.default.clone()];
        for solver in self.chosen.values() {
            if !all.iter().any(|s| Arc::ptr_eq(s, solver)) {
                all.push(solver.clone());
            }
        }
        all
    }

    /// Removes what a killed earlier run of this certificate left placed; every solver is
    /// asked even when one fails.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for solver in self.distinct() {
            if let Err(e) = solver.recover().await {
                failures.push(format!("{e:#}"));
            }
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(anyhow::anyhow!("{}", failures.join("; "))),
        }
    }
}

/// Presented tasks, grouped by the solver that presented them.
type Presented = Vec<(Arc<dyn Solver>, Vec<Task>)>;

/// What was presented for one order, taken down whatever happens: by `cleanup` on the
/// normal path (success or failure), by `Drop` when the order is cancelled (Ctrl-C,
/// SIGTERM), which spawns the cleanup and registers it for `finish_cleanups`.
#[derive(Default)]
pub struct Guard {
    presented: Presented,
    /// Counted in `OUT` from its first `present` until its cleanup has finished.
    counted: bool,
    /// The solvers told that this order began; told it ended after the cleanup.
    members: Vec<Arc<dyn Solver>>,
}

impl Guard {
    /// The guard of an order that may present through `solvers`: each is told the order
    /// began (and, when the guard is cleaned up or dropped, that it ended).
    pub fn new(solvers: &Solvers) -> Self {
        let members = solvers.distinct();
        for solver in &members {
            solver.begin();
        }
        Self {
            presented: Vec::new(),
            counted: false,
            members,
        }
    }

    /// Presents `tasks`, one batch per solver, the solvers side by side. Each batch is
    /// recorded before its solver runs, so a batch presented only in part is cleaned up too.
    /// Refused once `close` was called.
    pub async fn present(&mut self, solvers: &Solvers, tasks: Vec<Task>) -> anyhow::Result<()> {
        // counted before the check, and `close` sets before it reads: of a present and a
        // close that race, at least one sees the other (both SeqCst)
        if !self.counted {
            OUT.fetch_add(1, Ordering::SeqCst);
            self.counted = true;
        }
        if CLOSING.load(Ordering::SeqCst) {
            anyhow::bail!("interrupted: no challenge answer is presented any more");
        }
        let first = self.presented.len();
        for task in tasks {
            let solver = solvers.solver(&task.identifier);
            match self.presented[first..]
                .iter_mut()
                .find(|(s, _)| Arc::ptr_eq(s, solver))
            {
                Some((_, batch)) => batch.push(task),
                None => self.presented.push((solver.clone(), vec![task])),
            }
        }
        // a solver with nothing to present for this order is told the order is done with
        // it, so that other orders' answers do not wait for this one
        let batches = &self.presented[first..];
        self.members.retain(|member| {
            let presents = batches.iter().any(|(s, _)| Arc::ptr_eq(s, member));
            if !presents {
                member.end();
            }
            presents
        });
        // side by side: a solver that gathers several orders' answers waits for the others
        let presents = batches.iter().map(|(solver, batch)| solver.present(batch));
        futures_util::future::join_all(presents)
            .await
            .into_iter()
            .collect()
    }

    /// Takes down everything presented; every solver is asked even when one fails. If this
    /// is cancelled half way, the guard's `Drop` asks them all again.
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        let result = clean(&self.presented).await;
        self.presented.clear();
        result
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let presented = std::mem::take(&mut self.presented);
        let counted = std::mem::take(&mut self.counted);
        let members = std::mem::take(&mut self.members);
        let done = move || {
            for solver in &members {
                solver.end();
            }
            if counted {
                OUT.fetch_sub(1, Ordering::SeqCst);
            }
        };
        if presented.is_empty() {
            return done();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            crate::log::warn(format_args!(
                "challenge answers left in place: no runtime to remove them"
            ));
            return done();
        };
        let task = runtime.spawn(async move {
            if let Err(e) = clean(&presented).await {
                crate::log::warn(format_args!("{e:#}"));
            }
            done();
        });
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|t| !t.is_finished());
        pending.push(task);
    }
}

async fn clean(presented: &Presented) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for (solver, batch) in presented {
        if let Err(e) = solver.cleanup(batch).await {
            failures.push(format!("{e:#}"));
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(anyhow::anyhow!(
            "removing challenge answers: {}",
            failures.join("; ")
        )),
    }
}

/// Guards that may have answers out: from their first `present` to their finished cleanup.
static OUT: AtomicUsize = AtomicUsize::new(0);
/// Set by `close`: nothing is presented any more.
static CLOSING: AtomicBool = AtomicBool::new(false);

/// For a signal that ends the process: from now on nothing is presented. True while some
/// answer may be out (presented, or its cleanup not finished): the process must then wait
/// for the cleanups; false when it may end at once.
pub fn close() -> bool {
    CLOSING.store(true, Ordering::SeqCst);
    OUT.load(Ordering::SeqCst) > 0
}

/// Cleanups spawned by guards dropped before they could clean up (a cancelled order).
static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits for the cleanups of cancelled orders, at most `within`; how many did not finish.
/// main calls it before the process exits.
pub async fn finish_cleanups(within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    let mut unfinished = 0;
    loop {
        let next = PENDING.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(task) = next else {
            return unfinished;
        };
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            unfinished += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A solver that writes down what it is asked, and fails to present when told to.
    struct Recording {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        fail_present: bool,
    }

    impl Recording {
        fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Arc<Self> {
            Arc::new(Self {
                name,
                log: log.clone(),
                fail_present: false,
            })
        }

        fn note(&self, what: &str, tasks: &[Task]) {
            let names: Vec<String> = tasks.iter().map(|t| t.identifier.to_string()).collect();
            let line = format!("{} {what} {}", self.name, names.join(","));
            self.log.lock().unwrap().push(line);
        }
    }

    impl Solver for Recording {
        fn challenge_type(&self) -> ChallengeType {
            ChallengeType::Http01
        }

        fn present<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
            Box::pin(async move {
                self.note("present", tasks);
                match self.fail_present {
                    true => Err(anyhow::anyhow!("{} cannot present", self.name)),
                    false => Ok(()),
                }
            })
        }

        fn cleanup<'a>(&'a self, tasks: &'a [Task]) -> Pending<'a> {
            Box::pin(async move {
                // a cleanup that needs the runtime, as DNS-01 will
                tokio::task::yield_now().await;
                self.note("cleanup", tasks);
                Ok(())
            })
        }
    }

    fn dns(name: &str) -> Identifier {
        Identifier::Dns(DomainName::parse(name).unwrap())
    }

    fn task(name: &str) -> Task {
        Task {
            identifier: dns(name),
            challenge: ChallengeType::Http01,
            token: Token::parse(&format!("tok-{}", name.len())).unwrap(),
            key_authorization: KeyAuthorization::new("tok.thumb"),
        }
    }

    fn log() -> Arc<Mutex<Vec<String>>> {
        Arc::new(Mutex::new(Vec::new()))
    }

    fn lines(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_certificate_mixes_solvers_each_with_its_own_tasks() {
        let log = log();
        let solvers = Solvers::new(Recording::new("webroot", &log))
            .with(dns("b.test"), Recording::new("standalone", &log));
        let mut guard = Guard::default();
        let tasks = vec![task("a.test"), task("b.test"), task("c.test")];
        guard.present(&solvers, tasks).await.unwrap();
        guard.cleanup().await.unwrap();
        assert_eq!(
            lines(&log),
            [
                "webroot present a.test,c.test",
                "standalone present b.test",
                "webroot cleanup a.test,c.test",
                "standalone cleanup b.test",
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_present_is_cleaned_up_with_the_rest() {
        let log = log();
        let failing = Arc::new(Recording {
            name: "failing",
            log: log.clone(),
            fail_present: true,
        });
        let solvers = Solvers::new(Recording::new("webroot", &log)).with(dns("b.test"), failing);
        let mut guard = Guard::default();
        let tasks = vec![task("a.test"), task("b.test")];
        let err = guard.present(&solvers, tasks).await.unwrap_err();
        assert!(err.to_string().contains("failing cannot present"), "{err}");
        guard.cleanup().await.unwrap();
        assert_eq!(
            lines(&log),
            [
                "webroot present a.test",
                "failing present b.test",
                "webroot cleanup a.test",
                "failing cleanup b.test",
            ]
        );
    }

    #[tokio::test]
    async fn a_dropped_guard_still_cleans_up_before_exit() {
        let log = log();
        let solvers = Solvers::new(Recording::new("webroot", &log));
        // an order cancelled while it waits for validation, as by SIGTERM
        let order = async {
            let mut guard = Guard::default();
            guard.present(&solvers, vec![task("a.test")]).await?;
            std::future::pending::<()>().await;
            guard.cleanup().await
        };
        let cancelled = tokio::time::timeout(Duration::from_millis(10), order).await;
        assert!(cancelled.is_err());
        assert_eq!(finish_cleanups(Duration::from_secs(5)).await, 0);
        assert_eq!(
            lines(&log),
            ["webroot present a.test", "webroot cleanup a.test"]
        );
    }

    #[test]
    fn tokens_are_checked_and_key_authorizations_derive_their_values() {
        assert!(Token::parse("aZ09-_").is_some());
        for bad in ["", "a/b", "..", "a b", "a.b", &"a".repeat(257)] {
            assert_eq!(Token::parse(bad), None, "{bad:?}");
        }
        // the DNS-01 value is base64url(SHA-256(key authorization)), unpadded (computed
        // with Python's hashlib and base64)
        let ka = KeyAuthorization::new(
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI",
        );
        assert_eq!(
            ka.dns_value(),
            "lCM7cZyQXcVHK2nnW3jjAhNT3Fvm18UN-kWZZknKoYM"
        );
        assert_eq!(
            Identifier::from(&DomainName::parse_local("10.0.0.5").unwrap()),
            Identifier::Ip("10.0.0.5".parse().unwrap())
        );
    }
}
