//! Which server a client command talks to, and what to say when that server does not know the
//! wallet's API key.
//!
//! The server is `--server` (or `PENNYPOST_SERVER`) when given, else the one the wallet's
//! account was created at (`account create` saves it in the wallet), else
//! [`super::DEFAULT_SERVER`]. A wallet used against another server than its own gets a note on
//! stderr, and a 401 `unauthorized` there is named as the mismatch it most likely is.

use std::path::PathBuf;

use super::http::Answer;
use super::wallet::Wallet;
use super::{ClientArgs, DEFAULT_SERVER};
use crate::api::ErrorCode;

/// Where a client command sends its requests, and the wallet file it uses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's base URL, without a trailing `/`.
    pub server: String,
    /// The wallet file.
    pub wallet: PathBuf,
    /// The server the wallet's account was created at, as the wallet says.
    wallet_server: Option<String>,
}

impl Target {
    /// The server for `args` and `wallet` (see the module comment). Says on stderr when the
    /// command goes to another server than the wallet's.
    pub fn new(args: &ClientArgs, wallet: &Wallet) -> Target {
        let wallet_server = wallet.server.as_deref().map(|saved| {
            pennypost_audit::server_url::base_url(saved).unwrap_or_else(|_| saved.to_string())
        });
        let server = match (&args.server, &wallet_server) {
            (Some(chosen), _) => chosen.clone(),
            (None, Some(saved)) => saved.clone(),
            (None, None) => DEFAULT_SERVER.to_string(),
        };
        let target = Target {
            server,
            wallet: args.wallet.clone(),
            wallet_server,
        };
        if let Some(saved) = target.other_server() {
            if wallet.api_key.is_some() {
                eprintln!(
                    "note: wallet {} belongs to an account at {saved}; this command goes to {} \
                     (--server or PENNYPOST_SERVER)",
                    target.wallet.display(),
                    target.server
                );
            }
        }
        target
    }

    /// The wallet's own server, when the command goes to another one.
    fn other_server(&self) -> Option<&str> {
        self.wallet_server
            .as_deref()
            .filter(|saved| *saved != self.server)
    }

    /// `answer` in one line, as [`Answer::describe`], and for a 401 `unauthorized` to a request
    /// made with the wallet's API key, why the server may not know it.
    pub fn describe(&self, answer: &Answer) -> String {
        let described = answer.describe();
        if answer.status != 401
            || !answer
                .problem()
                .is_some_and(|p| p.code == ErrorCode::Unauthorized)
        {
            return described;
        }
        match self.other_server() {
            Some(saved) => format!(
                "{described}: the wallet {} holds an account of the server at {saved}, not of \
                 {}; leave out --server (and PENNYPOST_SERVER) to use the wallet's server, or \
                 give another --wallet for this one",
                self.wallet.display(),
                self.server
            ),
            None => format!(
                "{described}: the server at {} does not know the API key in the wallet {} \
                 (was the wallet made for another server, or the server's data replaced?)",
                self.server,
                self.wallet.display()
            ),
        }
    }
}
