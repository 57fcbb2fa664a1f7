//! Stateless HTTP-01: the proxy answers every challenge itself from the account thumbprint
//! (HAProxy's `http-request return ... "%[path,field(-1,/)].THUMBPRINT"`), so any number of
//! proxies behind one name can answer and nothing listens on certctl's side. There is
//! nothing to present or clean up; it must not write or serve anything.

use super::{ChallengeType, Pending, Solver, Task};

/// The solver for a proxy that answers HTTP-01 from the account thumbprint.
pub struct Stateless;

impl Solver for Stateless {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present<'a>(&'a self, _tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn cleanup<'a>(&'a self, _tasks: &'a [Task]) -> Pending<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}
