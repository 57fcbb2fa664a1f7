//! Many certificates put into one HAProxy over its kept-open connection, pipelined: the next
//! certificates' commands are written while the answers to earlier ones are read (at most
//! `WINDOW` certificates in flight), each answer still read to its own prompt, in order, and
//! judged for its own command. Anything unusual (a command refused as locked, a failure that
//! may have left a transaction open under those behind it, a broken connection) drains the
//! window, and those certificates are settled one at a time, as `Haproxy::commands` does.

use std::collections::VecDeque;
use std::path::Path;

use super::reply::{SetReply, expect, find_cert, first_line, is_same_cert, same_serial, tidy};
use super::{Deployed, Error, Haproxy, LOCKED, cli_arg, parse_serial};

/// How many certificates' commands may wait for their answers at once. Their replies sit in
/// the socket's buffer (a few hundred bytes each), far from filling it, so neither side
/// blocks the other.
pub const WINDOW: usize = 32;

/// One certificate to put into HAProxy: the bundle written at `path` (leaf, chain, key; no
/// blank line) and the serial (hex) HAProxy must then serve.
pub struct Push<'a> {
    pub path: &'a Path,
    pub bundle: &'a str,
    pub serial: &'a str,
}

/// Which commands a certificate still needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A loaded certificate: `set`, `commit`, `show`.
    Replace,
    /// A new one: `new`, `set`, `commit` ...
    Create,
    /// ... then `add ssl crt-list`, `show`.
    Insert,
}

/// One certificate on its way into HAProxy.
struct Job {
    /// Its place in the caller's list.
    index: usize,
    /// The name HAProxy gives it, and that name escaped for the CLI.
    name: String,
    arg: String,
    /// The crt-list it is added to (escaped), for a new certificate.
    list: String,
    set: String,
    serial: String,
    stage: Stage,
    /// The first command of the stage not yet answered as it should be.
    from: usize,
}

/// What a stage's answers say.
enum Verdict {
    /// The stage is done; the next one is to be sent.
    Next,
    Done(Deployed),
    /// A command was refused because certificates are locked (the refusal, to report when
    /// the retries are spent).
    Locked(Error),
    Failed(Error),
}

/// What one pipelined pass did: the certificates done (by their place in the caller's
/// list), and those that need more, in the order they were sent.
type Passed = (Vec<(usize, Deployed)>, Vec<(Job, Trouble)>);

/// Why a certificate left the pipeline before its end.
enum Trouble {
    /// Its own answer refused it, nothing unusual before it: reported as is.
    Failed(Error),
    /// Locked, or failed behind another failure (perhaps because of it): settled again.
    Again,
    /// Sent but not answered (the connection broke before).
    Unanswered,
}

impl Job {
    fn commands(&self) -> Vec<String> {
        let arg = &self.arg;
        let (commit, show) = (
            format!("commit ssl cert {arg}"),
            format!("show ssl cert {arg}"),
        );
        match self.stage {
            Stage::Replace => vec![self.set.clone(), commit, show],
            Stage::Create => vec![format!("new ssl cert {arg}"), self.set.clone(), commit],
            Stage::Insert => vec![format!("add ssl crt-list {} {arg}", self.list), show],
        }
    }

    /// The commands still to send.
    fn pending(&self) -> Vec<String> {
        self.commands().split_off(self.from)
    }

    /// Reads the answers to `pending()`, in order, each checked against its own command;
    /// `from` moves to the first one that is not right.
    fn judge(&mut self, replies: Vec<Result<String, Error>>) -> Verdict {
        let commands = self.commands();
        let sent = commands.len() - self.from;
        let mut replies = replies.into_iter();
        for _ in 0..sent {
            let command = &commands[self.from];
            let reply = match replies.next() {
                Some(Ok(reply)) => reply,
                Some(Err(e)) => return Verdict::Failed(e),
                None => {
                    return Verdict::Failed(Error::Refused {
                        command: first_line(command),
                        reply: "no answer".into(),
                    });
                }
            };
            if reply.contains(LOCKED) {
                return Verdict::Locked(Error::Refused {
                    command: first_line(command),
                    reply: tidy(&reply),
                });
            }
            if let Err(e) = self.check(command, &reply) {
                return Verdict::Failed(e);
            }
            self.from += 1;
        }
        match self.stage {
            Stage::Replace => Verdict::Done(Deployed::Replaced(self.name.clone())),
            Stage::Insert => Verdict::Done(Deployed::Added(self.name.clone())),
            Stage::Create => {
                self.stage = Stage::Insert;
                self.from = 0;
                Verdict::Next
            }
        }
    }

    /// Whether `reply` says that `command` (the one at `from`) did what was asked.
    fn check(&self, command: &str, reply: &str) -> Result<(), Error> {
        let refused = || Error::Refused {
            command: first_line(command),
            reply: tidy(reply),
        };
        let success = || reply.lines().any(|l| l.trim() == "Success!");
        match (self.stage, self.from) {
            (Stage::Create, 0) if reply.starts_with("New empty certificate store") => Ok(()),
            (Stage::Create, 0) => Err(refused()),
            // HAProxy 2.6 answers a `set` while another certificate's transaction is open by
            // putting the payload in that one ("Transaction updated for certificate OTHER")
            (Stage::Replace, 0) | (Stage::Create, 1) => {
                expect(command, reply, SetReply::parse)?;
                let ours = format!(" for certificate {}!", self.name);
                if reply.lines().next().is_some_and(|l| l.ends_with(&ours)) {
                    Ok(())
                } else {
                    Err(refused())
                }
            }
            (Stage::Replace, 1) | (Stage::Create, 2) | (Stage::Insert, 0) if success() => Ok(()),
            (Stage::Replace, 1) | (Stage::Create, 2) | (Stage::Insert, 0) => Err(refused()),
            // `show ssl cert`: an answer with no serial is not HAProxy's (replies out of step)
            _ => match parse_serial(reply) {
                None => Err(refused()),
                Some(served) if same_serial(&served, &self.serial) => Ok(()),
                Some(served) => Err(Error::SerialMismatch {
                    name: self.name.clone(),
                    served,
                    expected: self.serial.clone(),
                }),
            },
        }
    }

    /// Before sending a stage again after trouble: a commit goes with its `set` again, since
    /// while this transaction waited, a `set` sent behind it may have filled it with
    /// another certificate (HAProxy 2.6 does that; see `check`).
    fn rewind(&mut self) {
        let set = match self.stage {
            Stage::Replace => 0,
            Stage::Create => 1,
            Stage::Insert => return,
        };
        if self.from == set + 1 {
            self.from = set;
        }
    }

    /// After a failure: no transaction left open (`abort` up to the commit), no certificate
    /// left half added (`del` when the crt-list refused it).
    fn clean_up(&self, haproxy: &Haproxy) {
        let undo = match (self.stage, self.from) {
            (Stage::Replace, 0..=1) | (Stage::Create, _) => "abort",
            (Stage::Insert, 0) => "del",
            _ => return,
        };
        let _ = haproxy.command(&format!("{undo} ssl cert {}", self.arg));
    }
}

impl Haproxy {
    /// Puts each certificate of `pushes` into this HAProxy (in place of the one loaded from
    /// its path, or added to the crt-list of its directory), each checked to be served with
    /// its serial; one result per push, in order. Over a kept-open connection the commands
    /// of up to `WINDOW` certificates are in flight at once.
    pub fn deploy_many(&self, pushes: &[Push]) -> Vec<Result<Deployed, Error>> {
        let mut results: Vec<Option<Result<Deployed, Error>>> =
            pushes.iter().map(|_| None).collect();
        let mut ready = VecDeque::new();
        for (index, push) in pushes.iter().enumerate() {
            match self.plan(index, push) {
                Ok(job) => ready.push_back(job),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        while !ready.is_empty() {
            let (done, troubled) = self.pipeline(&mut ready);
            for (index, deployed) in done {
                results[index] = Some(Ok(deployed));
            }
            for (job, trouble) in troubled {
                let index = job.index;
                results[index] = Some(match trouble {
                    Trouble::Failed(e) => {
                        job.clean_up(self);
                        Err(e)
                    }
                    Trouble::Again => self.settle(job),
                    Trouble::Unanswered => self
                        .plan(index, &pushes[index])
                        .and_then(|job| self.settle(job)),
                });
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Refused {
                        command: "deploy".into(),
                        reply: "not sent".into(),
                    })
                })
            })
            .collect()
    }

    /// What `push` needs: the name HAProxy has for its path (or a new one, with the
    /// crt-list of its directory). A transaction left open by a killed run of ours is
    /// aborted; one of another tool's is left alone, and nothing is pushed.
    fn plan(&self, index: usize, push: &Push) -> Result<Job, Error> {
        let (open, found) = self.with_cert_list(|listed| {
            (
                listed.transactions.first().cloned(),
                find_cert(&listed.certificates, push.path),
            )
        })?;
        if let Some(other) = open {
            if !is_same_cert(&other, push.path) {
                return Err(Error::Busy { other });
            }
            self.command(&format!("abort ssl cert {}", cli_arg(&other)?))?;
            self.listed(|l| l.transactions.clear());
        }
        let (name, stage, list) = match found? {
            Some(name) => (name, Stage::Replace, String::new()),
            None => {
                let list = cli_arg(&self.crt_list_for(push.path)?)?;
                (push.path.display().to_string(), Stage::Create, list)
            }
        };
        Ok(Job {
            index,
            arg: cli_arg(&name)?,
            set: Self::set_command(&name, push.bundle)?,
            name,
            list,
            serial: push.serial.to_owned(),
            stage,
            from: 0,
        })
    }

    /// One certificate's remaining commands, one stage at a time, each refused-as-locked
    /// command sent again with the bounded retries; a failure is final (and cleaned up).
    fn settle(&self, mut job: Job) -> Result<Deployed, Error> {
        job.rewind();
        loop {
            let pending = job.pending();
            let commands: Vec<&str> = pending.iter().map(String::as_str).collect();
            match job.judge(self.commands(&commands)) {
                Verdict::Next => {}
                Verdict::Done(deployed) => {
                    self.record(&deployed);
                    return Ok(deployed);
                }
                Verdict::Locked(e) | Verdict::Failed(e) => {
                    job.clean_up(self);
                    return Err(e);
                }
            }
        }
    }

    /// Keeps the listed certificates current after an add.
    fn record(&self, deployed: &Deployed) {
        if let Deployed::Added(name) = deployed {
            self.listed(|l| l.certificates.push(name.clone()));
        }
    }

    /// Sends the jobs of `ready` over the kept-open connection, up to `WINDOW` ahead of
    /// their answers, and reads each answer in turn. Stops sending at the first trouble and
    /// returns once the window is drained: the jobs that need more than their answers (in
    /// the order they were sent), the ones done recorded. Without prompt mode every job is
    /// returned to be settled one by one.
    fn pipeline(&self, ready: &mut VecDeque<Job>) -> Passed {
        let mut troubled = Vec::new();
        let mut guard = self.session();
        let session = guard.get_or_insert_with(Default::default);
        let conn = match session.conn(&self.socket, self.timeout) {
            Ok(Some(conn)) => conn,
            // one command per connection, or no connection: each on its own
            Ok(None) | Err(_) => {
                let each = ready.drain(..).map(|job| (job, Trouble::Again)).collect();
                return (Vec::new(), each);
            }
        };
        let mut in_flight: VecDeque<Job> = VecDeque::new();
        let mut broken = false;
        let mut added = Vec::new();
        let mut done = Vec::new();
        loop {
            while troubled.is_empty() && !broken && in_flight.len() < WINDOW {
                let Some(job) = ready.pop_front() else { break };
                let pending = job.pending();
                let commands: Vec<&str> = pending.iter().map(String::as_str).collect();
                if let Err(failure) = conn.send(&commands) {
                    broken = true;
                    let e = self.error(commands[0], failure);
                    troubled.push((job, Trouble::Failed(e)));
                    break;
                }
                in_flight.push_back(job);
            }
            let Some(mut job) = in_flight.pop_front() else {
                break;
            };
            if broken {
                troubled.push((job, Trouble::Unanswered));
                continue;
            }
            let mut replies = Vec::new();
            for command in job.pending() {
                match conn.receive() {
                    Ok(reply) => replies.push(Ok(String::from_utf8_lossy(&reply).into_owned())),
                    Err(failure) => {
                        broken = true;
                        replies.push(Err(self.error(&command, failure)));
                        break;
                    }
                }
            }
            let disturbed = !troubled.is_empty();
            match job.judge(replies) {
                Verdict::Next => ready.push_front(job),
                Verdict::Done(deployed) => {
                    if let Deployed::Added(name) = &deployed {
                        added.push(name.clone());
                    }
                    done.push((job.index, deployed));
                }
                Verdict::Locked(_) => {
                    crate::log::verbose(format_args!(
                        "HAProxy at {}: certificates are locked (another client at work); \
                         {:?} sent again once the commands in flight are answered",
                        self.socket,
                        first_line(&job.pending()[0])
                    ));
                    troubled.push((job, Trouble::Again));
                }
                Verdict::Failed(_) if disturbed && !broken => troubled.push((job, Trouble::Again)),
                Verdict::Failed(e) => troubled.push((job, Trouble::Failed(e))),
            }
        }
        if broken {
            session.reset();
        } else if let Some(certs) = session.certs.as_mut() {
            certs.certificates.extend(added);
        }
        (done, troubled)
    }
}
