//! Coalescing the records of the orders that run at once: every order that started (and
//! uses the same DNS-01 setting) is a member; a present waits until no started member is
//! still on its way to presenting, then one flush places the whole round (one UPDATE per
//! zone, one propagation wait). The cleanups of a round are flushed together too, once its
//! records are placed and every member of the round has asked or ended. No timing window
//! decides: a member that ends without presenting (an order that failed early, or whose
//! authorizations were valid already) stops being waited for.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{Failure, Provider, Record};

/// What one round's flush tells each member: Ok, or why its records were not placed (or
/// not removed), with those of its records that certainly are not in the zone.
type Reply = Result<(), NotPlaced>;

/// Why a member's records were not all placed, and which of them certainly are not.
#[derive(Debug)]
pub struct NotPlaced {
    pub error: String,
    pub unplaced: Vec<Record>,
}

struct Waiter {
    member: u64,
    records: Vec<Record>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its order runs and may still present.
    Started,
    /// Presented; waiting for the round to close.
    Queued,
    /// Its records went out with round N; its cleanup has not been asked for yet.
    InRound(u64),
    /// Nothing outstanding.
    Idle,
}

#[derive(Default)]
struct Round {
    /// The UPDATEs (or hooks) are done: a cleanup need not wait any more.
    placed: bool,
    /// Told when the round's cleanup starts: the propagation wait is abandoned.
    abandon: Arc<tokio::sync::Notify>,
    members: HashSet<u64>,
    cleaning: Vec<Waiter>,
}

#[derive(Default)]
struct State {
    next_member: u64,
    next_round: u64,
    phases: HashMap<u64, Phase>,
    queue: Vec<Waiter>,
    rounds: HashMap<u64, Round>,
}

/// The batcher of one DNS-01 setting, shared by the certificates of a run that use it.
pub struct Batcher {
    provider: Arc<Provider>,
    state: Mutex<State>,
}

impl Batcher {
    pub fn new(provider: Arc<Provider>) -> Arc<Self> {
        Arc::new(Self {
            provider,
            state: Mutex::new(State::default()),
        })
    }

    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new member (one certificate's solver).
    pub fn member(&self) -> u64 {
        let mut state = self.state();
        state.next_member += 1;
        let id = state.next_member;
        state.phases.insert(id, Phase::Idle);
        id
    }

    /// The member's order started: presents wait for it from now on.
    pub fn begin(&self, member: u64) {
        self.state().phases.insert(member, Phase::Started);
    }

    /// The member's order ended (its cleanup, if any, is done): nobody waits for it.
    pub fn end(self: &Arc<Self>, member: u64) {
        let mut state = self.state();
        match state.phases.insert(member, Phase::Idle) {
            Some(Phase::Queued) => state.queue.retain(|w| w.member != member),
            Some(Phase::InRound(round)) => {
                if let Some(r) = state.rounds.get_mut(&round) {
                    r.members.remove(&member);
                }
                self.try_clean(&mut state, round);
            }
            _ => {}
        }
        self.try_close(&mut state);
    }

    /// Places `records` with those of every member presenting in the same round.
    pub async fn present(
        self: &Arc<Self>,
        member: u64,
        records: Vec<Record>,
    ) -> Result<(), NotPlaced> {
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.state();
            state.phases.insert(member, Phase::Queued);
            state.queue.push(Waiter {
                member,
                records,
                reply,
            });
            self.try_close(&mut state);
        }
        answer.await.unwrap_or_else(|_| {
            Err(NotPlaced {
                error: "the DNS records were not placed (interrupted)".into(),
                unplaced: Vec::new(),
            })
        })
    }

    /// Removes `records`: with the rest of their round once it is placed and complete, at
    /// once when they never went out with a round.
    pub async fn cleanup(
        self: &Arc<Self>,
        member: u64,
        records: Vec<Record>,
    ) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        let alone = {
            let mut state = self.state();
            match state.phases.insert(member, Phase::Idle) {
                Some(Phase::InRound(round)) if state.rounds.contains_key(&round) => {
                    if let Some(r) = state.rounds.get_mut(&round) {
                        r.members.remove(&member);
                        r.cleaning.push(Waiter {
                            member,
                            records,
                            reply,
                        });
                    }
                    self.try_clean(&mut state, round);
                    None
                }
                Some(Phase::Queued) => {
                    // never sent: the round had not closed
                    state.queue.retain(|w| w.member != member);
                    self.try_close(&mut state);
                    return Ok(());
                }
                _ => Some(records),
            }
        };
        if let Some(records) = alone {
            return self.provider.remove(&records).await;
        }
        match answer.await {
            Ok(result) => result.map_err(|e| anyhow::anyhow!(e.error)),
            Err(_) => Err(anyhow::anyhow!(
                "the DNS records were not removed (interrupted)"
            )),
        }
    }

    /// Closes the round when presents wait and no started member may still join it.
    fn try_close(self: &Arc<Self>, state: &mut State) {
        if state.queue.is_empty() || state.phases.values().any(|p| *p == Phase::Started) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.next_round += 1;
        let round = state.next_round;
        let waiters = std::mem::take(&mut state.queue);
        let mut r = Round::default();
        for w in &waiters {
            state.phases.insert(w.member, Phase::InRound(round));
            r.members.insert(w.member);
        }
        let abandon = r.abandon.clone();
        state.rounds.insert(round, r);
        let this = self.clone();
        runtime.spawn(async move {
            let records: Vec<Record> = waiters.iter().flat_map(|w| w.records.clone()).collect();
            let mut failed = this.provider.place(&records).await;
            // from here on a cleanup may go ahead (an interrupted run does not wait for
            // propagation); then it also ends the wait, which nobody needs any more
            {
                let mut state = this.state();
                if let Some(r) = state.rounds.get_mut(&round) {
                    r.placed = true;
                }
                this.try_clean(&mut state, round);
            }
            tokio::select! {
                () = this.provider.wait_served(&records, &mut failed) => {}
                () = abandon.notified() => {}
            }
            for w in waiters {
                let _ = w.reply.send(outcome(&failed, &w.records));
            }
        });
    }

    /// Removes a round's records once they are placed and every member asked or ended.
    fn try_clean(self: &Arc<Self>, state: &mut State, round: u64) {
        let ready = state
            .rounds
            .get(&round)
            .is_some_and(|r| r.placed && r.members.is_empty());
        if !ready {
            return;
        }
        let Some(r) = state.rounds.remove(&round) else {
            return;
        };
        r.abandon.notify_one();
        if r.cleaning.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let records: Vec<Record> = r.cleaning.iter().flat_map(|w| w.records.clone()).collect();
            let failed = this.provider.remove_each_zone(&records).await;
            for w in r.cleaning {
                let _ = w.reply.send(outcome(&failed, &w.records));
            }
        });
    }
}

/// A member's share of a flush: the failures of the zones its records are in.
fn outcome(failed: &HashMap<String, Failure>, records: &[Record]) -> Reply {
    let mut errors: Vec<&str> = Vec::new();
    let mut unplaced = Vec::new();
    for record in records {
        if let Some(failure) = failed.get(&record.zone) {
            if !errors.contains(&failure.message.as_str()) {
                errors.push(&failure.message);
            }
            if failure.unplaced {
                unplaced.push(record.clone());
            }
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(NotPlaced {
            error: errors.join("; "),
            unplaced,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Kind, Lookups, hook::Hooks};
    use super::*;
    use crate::types::HookStyle;

    fn record(domain: &str) -> Record {
        Record {
            domain: domain.into(),
            owner: format!("_acme-challenge.{domain}"),
            zone: "test".into(),
            value: "v".into(),
            token: "t".into(),
            all_domains: domain.into(),
        }
    }

    /// A batcher whose hooks write "DOMAIN REMAINING" lines to `log` (the remaining count
    /// runs over a round, so a round shows as one countdown); lookups go nowhere.
    fn batcher(log: &std::path::Path) -> Arc<Batcher> {
        let line = |what: &str| {
            format!(
                "echo \"{what} $CERTBOT_DOMAIN $CERTBOT_REMAINING_CHALLENGES\" >> {}",
                log.display()
            )
        };
        let hooks = Hooks::new(line("add"), Some(line("remove")), HookStyle::Certbot);
        Batcher::new(Arc::new(Provider {
            kind: Kind::Hooks(hooks),
            lookups: Lookups::nowhere(),
            zone: None,
            timeout: Duration::from_secs(30),
        }))
    }

    fn lines(log: &std::path::Path) -> Vec<String> {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn a_round_waits_for_every_started_member_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let batcher = batcher(&log);
        let (a, b, c, late) = (
            batcher.member(),
            batcher.member(),
            batcher.member(),
            batcher.member(),
        );
        for m in [a, b, c] {
            batcher.begin(m);
        }
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.present(a, vec![record("a.test")]).await }
        });
        // c's order ends without presenting (its authorizations were valid): not waited for
        batcher.end(c);
        let second = batcher.present(b, vec![record("b.test")]);
        let (first, second) = tokio::join!(first, second);
        // the records were placed in one round (one countdown, in either order); the
        // propagation check could not ask anyone
        assert!(first.unwrap().is_err() && second.is_err());
        let mut placed = lines(&log);
        placed.sort();
        assert!(
            placed == ["add a.test 0", "add b.test 1"]
                || placed == ["add a.test 1", "add b.test 0"],
            "{placed:?}"
        );

        // a member that starts later forms its own round; cleanups go per round
        batcher.begin(late);
        let _ = batcher.present(late, vec![record("late.test")]).await;
        let (x, y, z) = tokio::join!(
            batcher.cleanup(a, vec![record("a.test")]),
            batcher.cleanup(b, vec![record("b.test")]),
            batcher.cleanup(late, vec![record("late.test")]),
        );
        assert!(x.is_ok() && y.is_ok() && z.is_ok());
        let mut removals: Vec<String> = lines(&log).into_iter().skip(3).collect();
        removals.sort();
        assert_eq!(
            removals,
            ["remove a.test 1", "remove b.test 0", "remove late.test 0"]
        );
    }
}
