//! The only module that speaks ACME (RFC 8555), on top of instant-acme. It adds what that
//! crate lacks: trust of a `--ca-bundle` with many certificates, request timeouts, one
//! retry policy for badNonce, 429 and 5xx, and problem documents turned into clear errors.
//! It knows nothing of files or of how a challenge is answered: callers pass credentials
//! and solvers (crate::challenge) in, and store what comes out.
//!
//! One file per noun: `transport` (the HTTPS client), `answer` (what an answer must be, and
//! the errors of one that is not ACME), `nonces`, `retry` (when an exchange is tried again),
//! `account`, `order` (the order flow, ARI, revocation) and `problem` (what a person reads
//! when the CA says no).

mod account;
mod answer;
mod chains;
mod directory;
mod limits;
mod nonces;
mod order;
mod problem;
mod retry;
mod revocation;
mod transport;

pub use account::{create_account, restore_account, terms_of_service};
pub use directory::{DirectoryMeta, Eab, check_eab, check_profile, directory_meta};
pub use limits::{RateLimited, rate_limited, retry_at};
pub use order::{Choices, Issuance, cert_id, issue, renewal_info};
pub use problem::{account_gone, explain};
pub use retry::RetryAfter;
pub use revocation::revoke;
pub use transport::{AcmeHttp, DEFAULT_TIMEOUT as DEFAULT_HTTP_TIMEOUT};
