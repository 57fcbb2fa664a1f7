//! RFC 2136 dynamic updates signed with TSIG (RFC 8945): one UPDATE message per zone adds
//! (or deletes) every TXT value of a batch, sent over TCP to the primary server. Deleting
//! names each value (RFC 2136 §2.5.4), so other records at the same name stay. The server's
//! refusal is named as it said it (BADSIG, BADKEY, BADTIME, REFUSED, NOTAUTH...), with what
//! to check; an answer that is not signed with the key is not believed.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::time::Instant;

use super::propagation::socket_addr;
use super::tsig::TsigKey;
use super::wire;
use crate::settings::DnsAddr;

/// TTL of the TXT records: short, so a resolver does not keep a stale value for long.
const TTL: u32 = 60;

/// Whether an UPDATE adds its records or deletes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Delete,
}

/// The primary server of the zones and the key it accepts updates with.
pub struct Rfc2136 {
    pub server: DnsAddr,
    pub key: TsigKey,
}

impl Rfc2136 {
    /// Adds or deletes the TXT `records` (owner, value) of one `zone`, in one UPDATE.
    pub async fn update(
        &self,
        zone: &Name,
        change: Change,
        records: &[(Name, String)],
        deadline: Instant,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let what = match change {
            Change::Add => "adding",
            Change::Delete => "removing",
        };
        let server = socket_addr(&self.server).await?;
        let mut message = update_message(zone, change, records)?;
        let signer = self.key.signer()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as u32;
        let verifier = message.finalize(&signer, now).map_err(|e| {
            anyhow!(
                "signing the update with the TSIG key {}: {e}",
                self.key.label()
            )
        })?;
        let bytes = message.to_vec().context("encoding the update")?;
        crate::log::verbose(format_args!(
            "DNS UPDATE to {server}: {what} {} TXT record(s) in zone {zone}",
            records.len()
        ));
        let context = || {
            format!(
                "{what} the TXT records in zone {zone} at {} (RFC 2136, key {})",
                self.server,
                self.key.label()
            )
        };
        let answer = wire::tcp(server, &bytes, deadline)
            .await
            .map_err(|e| {
                e.context(format!(
                    "no answer within {} s (--dns-timeout)",
                    timeout.as_secs()
                ))
            })
            .with_context(context)?;
        let parsed = wire::parse(server, &answer).with_context(context)?;
        if parsed.id() != message.id() || parsed.message_type() != MessageType::Response {
            return Err(anyhow!("{server} answered another message")).with_context(context);
        }
        if let Some(refusal) = refusal(&parsed, &self.key.label(), zone) {
            let refused = Refused(format!("the DNS server {} answered {refusal}", self.server));
            return Err(anyhow::Error::new(refused)).with_context(context);
        }
        match verifier {
            Some(mut verify) => verify(&answer).map(drop).map_err(|e| {
                anyhow!(
                    "the DNS server {}'s answer is not signed with the key {} ({e}); the update may not have been made by it",
                    self.server,
                    self.key.label()
                )
            }),
            None => Ok(()),
        }
        .with_context(context)
    }
}

/// The server answered and did not make the update: nothing of it was applied (an UPDATE
/// is all or nothing, RFC 2136 §3.4).
#[derive(Debug)]
pub struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// An UPDATE for `zone` that adds or deletes each TXT (owner, value).
fn update_message(
    zone: &Name,
    change: Change,
    records: &[(Name, String)],
) -> anyhow::Result<Message> {
    let mut zone_query = Query::query(zone.clone(), RecordType::SOA);
    zone_query.set_query_class(DNSClass::IN);
    let mut message = Message::new();
    message
        .set_id(wire::message_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Update)
        .set_recursion_desired(false);
    message.add_zone(zone_query);
    for (owner, value) in records {
        if !zone.zone_of(owner) {
            bail!("{owner} is not in zone {zone}");
        }
        let mut record = Record::from_rdata(
            owner.clone(),
            TTL,
            RData::TXT(TXT::new(vec![value.clone()])),
        );
        if change == Change::Delete {
            // RFC 2136 §2.5.4: class NONE, TTL 0 deletes this value only
            record.set_dns_class(DNSClass::NONE).set_ttl(0);
        }
        message.add_update(record);
    }
    Ok(message)
}

/// Why the server did not make the update, in its words and with what to check; None when
/// it did.
fn refusal(answer: &Message, key: &str, zone: &Name) -> Option<String> {
    let tsig_error = answer.signature().iter().find_map(|r| match r.data() {
        RData::DNSSEC(DNSSECRData::TSIG(tsig)) => tsig_error_code(&tsig.to_string()),
        _ => None,
    });
    let why = match (tsig_error, answer.response_code()) {
        (Some(16), _) => {
            format!("BADSIG: the TSIG secret of key {key} is not the server's; check the key file")
        }
        (Some(17), _) => format!(
            "BADKEY: the server does not know the key {key} (its name or algorithm differs)"
        ),
        (Some(18), _) => {
            "BADTIME: the clocks of this host and the server differ by more than 5 minutes"
                .to_owned()
        }
        (Some(code @ 1..), _) => format!("TSIG error {code}"),
        (_, ResponseCode::NoError) => return None,
        (_, ResponseCode::Refused) => format!(
            "REFUSED: the key {key} may not update these names; check the zone's update-policy \
             (grant {key} subdomain {zone} TXT;)"
        ),
        (_, ResponseCode::NotAuth) => {
            format!("NOTAUTH: the server is not authoritative (primary) for zone {zone}")
        }
        (_, ResponseCode::NotZone) => format!("NOTZONE: a name is outside zone {zone}"),
        (_, code) => code.to_string(),
    };
    Some(why)
}

/// The error field of a TSIG record as hickory prints it ("ALG TIME FUDGE MAC OID ERROR
/// OTHER"; an empty MAC leaves its field empty).
fn tsig_error_code(printed: &str) -> Option<u16> {
    printed.split(' ').nth(5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::rdata::tsig::{TSIG, TsigAlgorithm};

    use super::*;

    #[test]
    fn the_tsig_error_of_an_answer_is_read() {
        for (mac, error) in [(vec![], 16u16), (vec![1, 2, 3], 17), (vec![], 0)] {
            let tsig = TSIG::new(TsigAlgorithm::HmacSha256, 1, 300, mac, 7, error, vec![]);
            assert_eq!(tsig_error_code(&tsig.to_string()), Some(error), "{tsig}");
        }
    }

    #[test]
    fn an_update_names_each_value_and_deletes_only_it() {
        let zone = Name::from_ascii("mon-app.test.").unwrap();
        let owner = Name::from_ascii("_acme-challenge.mon-app.test.").unwrap();
        let records = vec![
            (owner.clone(), "one".to_owned()),
            (owner.clone(), "two".to_owned()),
        ];
        let add = update_message(&zone, Change::Add, &records).unwrap();
        assert_eq!(add.op_code(), OpCode::Update);
        assert_eq!(add.updates().len(), 2);
        assert!(
            add.updates()
                .iter()
                .all(|r| r.dns_class() == DNSClass::IN && r.ttl() == TTL)
        );
        let delete = update_message(&zone, Change::Delete, &records).unwrap();
        assert!(
            delete
                .updates()
                .iter()
                .all(|r| r.dns_class() == DNSClass::NONE && r.ttl() == 0)
        );
        let elsewhere = vec![(
            Name::from_ascii("_acme-challenge.other.test.").unwrap(),
            "x".to_owned(),
        )];
        assert!(update_message(&zone, Change::Add, &elsewhere).is_err());
    }
}
