//! Where records go and when they are served: CNAME and SOA lookups (the `_acme-challenge`
//! name's target and its zone), the zone's nameservers (NS, then each one's addresses), and
//! the wait until every one of them serves every value: asked at once, then after 100 ms,
//! backing off, until the deadline, after which the error names each server that lacked a
//! record. Lookups go to the system's resolvers or `--dns-resolver`; nothing is written.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::wire;
use crate::settings::DnsAddr;

/// How long one lookup may wait for one resolver before the next is asked.
const LOOKUP_WAIT: Duration = Duration::from_secs(5);
/// How long one propagation check may wait for one nameserver.
const CHECK_WAIT: Duration = Duration::from_secs(3);
/// First pause between propagation checks, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);
/// CNAMEs followed at most.
const MAX_CNAMES: usize = 8;

/// The resolvers lookups go to, and the port the zone's nameservers are asked on.
#[derive(Debug, Clone)]
pub struct Lookups {
    resolvers: Vec<SocketAddr>,
    nameserver_port: u16,
}

impl Lookups {
    /// `--dns-resolver` when given (its port then applies to the nameservers found by NS
    /// lookup too: a lab or a closed network whose DNS is not on port 53), else the
    /// nameservers of /etc/resolv.conf (127.0.0.1 when it lists none).
    pub async fn new(resolver: Option<&DnsAddr>) -> anyhow::Result<Self> {
        match resolver {
            Some(addr) => Ok(Self {
                resolvers: vec![socket_addr(addr).await?],
                nameserver_port: if addr.explicit_port { addr.port } else { 53 },
            }),
            None => {
                let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                let mut resolvers = system_resolvers(&text);
                if resolvers.is_empty() {
                    resolvers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
                }
                Ok(Self {
                    resolvers,
                    nameserver_port: 53,
                })
            }
        }
    }

    /// Lookups that all fail at once (nothing listens on the port): for tests that must not
    /// touch the network.
    #[cfg(test)]
    pub fn nowhere() -> Self {
        Self {
            resolvers: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
            nameserver_port: 9,
        }
    }

    fn describe(&self) -> String {
        let all: Vec<String> = self.resolvers.iter().map(ToString::to_string).collect();
        all.join(", ")
    }

    /// Asks the resolvers in turn; the first answer counts.
    async fn ask(
        &self,
        name: &Name,
        rtype: RecordType,
        deadline: Instant,
    ) -> anyhow::Result<Message> {
        let mut last = None;
        for resolver in &self.resolvers {
            let within = wire::exchange_deadline(deadline, LOOKUP_WAIT);
            match wire::query(*resolver, name, rtype, true, within).await {
                Ok(answer) => return Ok(answer),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no resolver to ask")))
            .map_err(|e| e.context(format!("looking up {name} {rtype}")))
    }

    /// Where the TXT record for `name` goes: the end of its CNAME chain (a name delegated
    /// to a validation zone), or `name` itself.
    pub async fn follow_cnames(&self, name: &Name, deadline: Instant) -> anyhow::Result<Name> {
        let mut current = name.clone();
        for _ in 0..MAX_CNAMES {
            let answer = self.ask(&current, RecordType::CNAME, deadline).await?;
            let target = answer.answers().iter().find_map(|r| match r.data() {
                RData::CNAME(target) if r.name() == &current => Some(target.0.clone()),
                _ => None,
            });
            match target {
                Some(target) if target == *name => bail!("{name} is a CNAME loop"),
                Some(target) => current = target,
                None => return Ok(current),
            }
        }
        bail!("{name} is a chain of more than {MAX_CNAMES} CNAMEs")
    }

    /// The zone that holds `name`: the owner of the SOA record the resolvers give for it
    /// (in the answer, or with a negative answer), else the same for its parent, and so on.
    pub async fn zone_of(&self, name: &Name, deadline: Instant) -> anyhow::Result<Name> {
        let mut candidate = name.clone();
        let mut last_code = ResponseCode::NoError;
        loop {
            let answer = self.ask(&candidate, RecordType::SOA, deadline).await?;
            let soa = answer
                .answers()
                .iter()
                .chain(answer.name_servers())
                .find(|r| r.record_type() == RecordType::SOA && r.name().zone_of(name));
            match soa {
                // the root's SOA (a name under a TLD that does not exist) is no zone to update
                Some(soa) if !soa.name().is_root() => return Ok(soa.name().clone()),
                Some(_) => candidate = Name::root(),
                None => {}
            }
            last_code = match answer.response_code() {
                ResponseCode::NoError | ResponseCode::NXDomain => last_code,
                other => other,
            };
            if candidate.num_labels() <= 1 {
                bail!(
                    "no DNS zone found for {name}: the resolver {} knows no zone that holds \
                     it{}; give the zone with --dns-zone",
                    self.describe(),
                    match last_code {
                        ResponseCode::NoError => String::new(),
                        code => format!(" (it answered {code})"),
                    }
                );
            }
            candidate = candidate.base_name();
        }
    }

    /// The zone's nameservers: each NS name with its addresses, asked on the nameserver port.
    pub async fn nameservers(
        &self,
        zone: &Name,
        deadline: Instant,
    ) -> anyhow::Result<Vec<(Name, SocketAddr)>> {
        let answer = self.ask(zone, RecordType::NS, deadline).await?;
        let names: Vec<Name> = answer
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::NS(ns) if r.name() == zone => Some(ns.0.clone()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            bail!(
                "the zone {zone} has no NS records at the resolver {}",
                self.describe()
            );
        }
        let mut servers = Vec::new();
        for ns in names {
            let mut addresses = Vec::new();
            for rtype in [RecordType::A, RecordType::AAAA] {
                let answer = self.ask(&ns, rtype, deadline).await?;
                addresses.extend(answer.answers().iter().filter_map(|r| match r.data() {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                }));
            }
            if addresses.is_empty() {
                bail!("the nameserver {ns} of zone {zone} has no address (A or AAAA record)");
            }
            servers.extend(
                addresses
                    .into_iter()
                    .map(|ip| (ns.clone(), SocketAddr::new(ip, self.nameserver_port))),
            );
        }
        Ok(servers)
    }

    /// Waits until every nameserver of `zone` serves every (owner, value) TXT record, or
    /// fails at `deadline` naming each server that still lacked one, and why.
    pub async fn wait_until_served(
        &self,
        zone: &Name,
        records: &[(Name, String)],
        deadline: Instant,
        timeout_secs: u64,
    ) -> anyhow::Result<()> {
        let servers = self.nameservers(zone, deadline).await?;
        let started = Instant::now();
        crate::log::verbose(format_args!(
            "waiting until the {} nameserver address(es) of {zone} serve {} TXT record(s)",
            servers.len(),
            records.len()
        ));
        // (nameserver, record, why it was not served yet)
        type Check<'a> = (&'a (Name, SocketAddr), &'a (Name, String), String);
        let mut pending: Vec<Check> = servers
            .iter()
            .flat_map(|s| records.iter().map(move |r| (s, r, String::new())))
            .collect();
        let mut pause = FIRST_PAUSE;
        loop {
            let checks = pending
                .iter()
                .map(|((_, addr), (owner, value), _)| async move {
                    let within = wire::exchange_deadline(deadline, CHECK_WAIT);
                    match wire::query(*addr, owner, RecordType::TXT, false, within).await {
                        Ok(answer) if serves(&answer, owner, value) => None,
                        Ok(answer) => Some(format!(
                            "answered {} without the value",
                            answer.response_code()
                        )),
                        Err(e) => Some(format!("{e:#}")),
                    }
                });
            let results = futures_util::future::join_all(checks).await;
            let mut still = Vec::new();
            for (entry, result) in pending.into_iter().zip(results) {
                if let Some(why) = result {
                    still.push((entry.0, entry.1, why));
                }
            }
            pending = still;
            if pending.is_empty() {
                crate::log::verbose(format_args!(
                    "every nameserver of {zone} serves the records after {} ms",
                    started.elapsed().as_millis()
                ));
                return Ok(());
            }
            if Instant::now() + pause >= deadline {
                let lacking: Vec<String> = pending
                    .iter()
                    .map(|((ns, addr), (owner, _), why)| {
                        format!("{ns} ({addr}) for {owner}: {why}")
                    })
                    .collect();
                bail!(
                    "the TXT records did not reach every nameserver of {zone} within {timeout_secs} s \
                     (--dns-timeout): {}",
                    lacking.join("; ")
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

/// Whether `answer` holds the TXT record `owner` = `value`.
fn serves(answer: &Message, owner: &Name, value: &str) -> bool {
    answer.response_code() == ResponseCode::NoError
        && answer.answers().iter().any(|r| {
            r.name() == owner
                && matches!(r.data(), RData::TXT(txt)
                    if txt.txt_data().iter().flat_map(|s| s.iter().copied()).eq(value.bytes()))
        })
}

/// The address of a server named HOST[:PORT]: an IP as is, a host name through the system.
pub async fn socket_addr(addr: &DnsAddr) -> anyhow::Result<SocketAddr> {
    if let Ok(ip) = addr.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, addr.port));
    }
    let mut found = tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await
        .map_err(|e| anyhow!("looking up the DNS server {}: {e}", addr.host))?;
    found
        .next()
        .ok_or_else(|| anyhow!("the DNS server {} has no address", addr.host))
}

/// The `nameserver` lines of a resolv.conf text.
fn system_resolvers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let text = "# comment\nsearch lan\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:1\n";
        assert_eq!(
            system_resolvers(text),
            vec![
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_txt_answer_serves_only_its_exact_value() {
        use hickory_proto::rr::Record;
        use hickory_proto::rr::rdata::TXT;
        let owner = Name::from_ascii("_acme-challenge.a.test.").unwrap();
        let mut answer = wire::query_message(&owner, RecordType::TXT, false);
        answer.add_answer(Record::from_rdata(
            owner.clone(),
            60,
            RData::TXT(TXT::new(vec!["other".into()])),
        ));
        answer.add_answer(Record::from_rdata(
            owner.clone(),
            60,
            RData::TXT(TXT::new(vec!["abc".into()])),
        ));
        assert!(serves(&answer, &owner, "abc"));
        assert!(!serves(&answer, &owner, "ab"));
        assert!(!serves(
            &answer,
            &Name::from_ascii("b.test.").unwrap(),
            "abc"
        ));
    }
}
