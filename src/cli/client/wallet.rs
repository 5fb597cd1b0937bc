//! The wallet file: the account's id and API key and the stamps it bought, written mode 0600
//! through a temporary file and a rename, so a crash leaves either the old or the new wallet.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Wallet {
    pub server: Option<String>,
    pub account_id: Option<String>,
    pub api_key: Option<String>,
    #[serde(default)]
    pub stamps: Vec<String>,
}

impl Wallet {
    pub fn load(path: &Path) -> Result<Wallet, String> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("wallet {} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Wallet::default()),
            Err(e) => Err(format!("cannot read wallet {}: {e}", path.display())),
        }
    }

    /// Writes the wallet mode 0600 through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot write wallet {}: {e}", tmp.display()))?;
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("cannot write wallet {}: {e}", tmp.display()))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot write wallet {}: {e}", path.display()))
    }

    pub fn api_key(&self) -> Result<&str, String> {
        self.api_key
            .as_deref()
            .ok_or_else(|| "no account in this wallet: run `pennypost account create` first".into())
    }
}
