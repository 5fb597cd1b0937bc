//! `pennypost serve`: open (or create) everything under the data and keys directories, bind,
//! and serve until Ctrl+C or SIGTERM.
//!
//! [`ServeArgs`] is the one place the flags of `serve` are declared: their environment
//! variables and defaults here, and their config-file keys derived from them
//! (`super::config_file`). With `--metrics-listen`, the Prometheus recorder is installed
//! before the service starts and `GET /metrics` is served on that address
//! (`crate::telemetry`).

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rand_core::{OsRng, RngCore as _};

use crate::config::{Economy, Limits, RateLimits};
use crate::domain::{Policy, VotePricing};
use crate::keys;
use crate::service::{App, AppConfig};
use crate::store::sled_store::DEFAULT_CACHE_MIB;
use crate::store::{PgLimits, PgStore, SledStore, Store};
use crate::time::Timestamp;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML file of settings: its keys are these flags' long names with `_` for `-`
    /// (`stamp_price = 2`). A flag beats the environment, which beats the file, which beats
    /// the default.
    #[arg(long, env = "PENNYPOST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on: IP:PORT (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`) or
    /// HOST:PORT (`localhost:8080`, resolved once at start; its first IPv4 address).
    #[arg(long, env = "PENNYPOST_LISTEN", default_value = "127.0.0.1:8080", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Directory of the database and the generated admin token. With `--database`, only the
    /// admin token's.
    #[arg(long, env = "PENNYPOST_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Keep the store in this PostgreSQL database (`postgres://user@host:port/dbname`)
    /// instead of sled in the data directory. Servers started with the same database and
    /// copies of the same keys directory are one service. The server creates and migrates the
    /// schema itself.
    #[arg(long, env = "PENNYPOST_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    /// Most connections to the database this server holds (with `--database`).
    #[arg(long, env = "PENNYPOST_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,
    /// Milliseconds a connect to the database may take, and a request may wait for a free
    /// connection, before it answers 503 (with `--database`).
    #[arg(
        long,
        env = "PENNYPOST_DATABASE_CONNECT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub database_connect_timeout_ms: u64,
    /// Milliseconds one database statement (or lock wait) may take before it is cancelled and
    /// the request answers 503 (with `--database`).
    #[arg(
        long,
        env = "PENNYPOST_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 10000
    )]
    pub database_statement_timeout_ms: u64,
    /// PEM file of the certificate authorities that sign the database server's certificate
    /// (with `--database`). Every connection is then TLS, and the server must show a
    /// certificate of one of them for the URL's host. Without it, a URL saying
    /// `sslmode=require` is refused.
    #[arg(long, value_name = "FILE", env = "PENNYPOST_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// A file holding the admin token (mode 0600, the token on its first line), for a
    /// service manager that keeps secrets in files. Instead of PENNYPOST_ADMIN_TOKEN, not with
    /// it; without either, a token is generated into `<data-dir>/admin_token`.
    #[arg(long, env = "PENNYPOST_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Directory of the issuer and ledger keys.
    #[arg(long, env = "PENNYPOST_KEYS_DIR", default_value = "./keys")]
    pub keys_dir: PathBuf,
    /// Start even though the secret of the ledger's active issuer key is missing from the
    /// keys directory: publish that key as retired (its stamps keep verifying) and make a new
    /// active key. Without it, such a start is refused.
    #[arg(long, env = "PENNYPOST_RETIRE_MISSING_KEYS")]
    pub retire_missing_keys: bool,
    /// Price of one stamp in minor units.
    #[arg(long, env = "PENNYPOST_STAMP_PRICE", default_value_t = 1)]
    pub stamp_price: u64,
    /// Stamps one post costs.
    #[arg(long, env = "PENNYPOST_POST_COST", default_value_t = 1)]
    pub post_cost: usize,
    /// Stamps one vote costs.
    #[arg(long, env = "PENNYPOST_VOTE_COST", default_value_t = 1)]
    pub vote_cost: usize,
    /// Seconds a stamp stays spendable.
    #[arg(long, env = "PENNYPOST_STAMP_TTL_SECS", default_value_t = 31_536_000)]
    pub stamp_ttl_secs: u64,
    /// The flood window: a payer's posts within it make its next post dearer.
    #[arg(long, env = "PENNYPOST_REPEAT_WINDOW_SECS", default_value_t = 600)]
    pub repeat_window_secs: u64,
    /// Each earlier post of the payer in the window multiplies a post's price by this; 1 turns
    /// flood pricing off.
    #[arg(long, env = "PENNYPOST_REPEAT_FACTOR", default_value_t = 2)]
    pub repeat_factor: u64,
    /// How one payer's repeated votes on one post are priced: quadratic (the n-th costs
    /// 2n − 1 times the vote cost) or flat.
    #[arg(long, env = "PENNYPOST_VOTE_PRICING", default_value = "quadratic")]
    pub vote_pricing: VotePricing,
    /// Distinct up-voting payers that refund a post's base postage to its payer; 0 turns
    /// refunds off.
    #[arg(long, env = "PENNYPOST_REFUND_VOTERS", default_value_t = 3)]
    pub refund_voters: u64,
    /// The checkpoint origin line (and the checkpoint key's name on first start): 1 to 255
    /// characters, no spaces, control characters or `+`.
    #[arg(
        long,
        env = "PENNYPOST_LEDGER_ORIGIN",
        default_value = "localhost/pennypost"
    )]
    pub ledger_origin: String,
    /// Currency name of the minor unit, written into credit, policy and refund entries: 1 to 32
    /// characters, no control characters or surrounding spaces.
    #[arg(long, env = "PENNYPOST_CURRENCY", default_value = "cents")]
    pub currency: String,
    /// Most characters in a post's author.
    #[arg(long, env = "PENNYPOST_AUTHOR_CHARS_MAX", default_value_t = 64)]
    pub author_chars_max: usize,
    /// Most characters in a post's body.
    #[arg(long, env = "PENNYPOST_BODY_CHARS_MAX", default_value_t = 10_000)]
    pub body_chars_max: usize,
    /// Most bytes in a request body.
    #[arg(
        long,
        env = "PENNYPOST_REQUEST_BODY_BYTES_MAX",
        default_value_t = 65_536
    )]
    pub request_body_bytes_max: usize,
    /// Most open connections at once.
    #[arg(long, env = "PENNYPOST_CONNECTIONS_MAX", default_value_t = 4096)]
    pub connections_max: usize,
    /// Seconds a request may take, reading its body included.
    #[arg(long, env = "PENNYPOST_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, env = "PENNYPOST_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Account creations per minute per client IP (0 = no limit).
    #[arg(long, env = "PENNYPOST_RATE_ACCOUNTS_PER_MINUTE", default_value_t = 60)]
    pub rate_accounts_per_minute: u32,
    /// Purchases per minute per client IP (0 = no limit).
    #[arg(
        long,
        env = "PENNYPOST_RATE_PURCHASES_PER_MINUTE",
        default_value_t = 600
    )]
    pub rate_purchases_per_minute: u32,
    /// Failed authentications per minute per client IP before it is refused (0 = no limit).
    #[arg(
        long,
        env = "PENNYPOST_RATE_AUTH_FAILURES_PER_MINUTE",
        default_value_t = 30
    )]
    pub rate_auth_failures_per_minute: u32,
    /// Entries the server's own ledger check may lag behind the log and `GET /v1/audit` still
    /// wait for it; further behind, it answers 503 `audit_catching_up` with Retry-After.
    #[arg(long, env = "PENNYPOST_AUDIT_LAG_MAX", default_value_t = 200_000)]
    pub audit_lag_max: u64,
    /// A reverse proxy (IP address) whose X-Forwarded-For header names the client, for the
    /// per-client rate limits; repeat the flag, or comma-separate the environment variable.
    /// Without it, behind a proxy every client shares the proxy's budget.
    #[arg(
        long = "trusted-proxy",
        env = "PENNYPOST_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// MiB of memory sled may use to cache database pages. More keeps more of a large
    /// database in memory: spends of stamps bought long ago then read fewer pages from disk.
    /// Sled only: with `--database`, PostgreSQL's own settings size its cache.
    #[arg(long, env = "PENNYPOST_CACHE_MIB", default_value_t = DEFAULT_CACHE_MIB)]
    pub cache_mib: u64,
    /// Serve Prometheus metrics at `GET /metrics` on this address (keep it private: it is
    /// not rate limited), in the form of `--listen`. Not served when unset.
    #[arg(
        long,
        env = "PENNYPOST_METRICS_LISTEN",
        value_name = "ADDR",
        value_parser = listen_address
    )]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub payments: super::serve_payments::PaymentArgs,
}

/// An address to listen on: an IP address and port, or a host name and port resolved now to
/// its first IPv4 address (else its first address), so `localhost:8080` works as it does in
/// a browser. Anything else is refused saying which forms are wanted.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let wanted = "give IP:PORT or HOST:PORT, as in 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080 \
                  or localhost:8080";
    let port_ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(format!("{text:?} is not an address to listen on: {wanted}"));
    }
    let addresses: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve the host name ({e}); {wanted}"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: the host name has no address; {wanted}"))
}

/// The named bounds of `--cache-mib`.
const CACHE_MIB_MIN: u64 = 16;
const CACHE_MIB_MAX: u64 = 1 << 20;

impl ServeArgs {
    pub fn economy(&self) -> Economy {
        Economy {
            policy: Policy {
                currency: self.currency.clone(),
                stamp_price: self.stamp_price,
                post_cost: self.post_cost as u64,
                vote_cost: self.vote_cost as u64,
                repeat_window_secs: self.repeat_window_secs,
                repeat_factor: self.repeat_factor,
                vote_pricing: self.vote_pricing,
                refund_voters: self.refund_voters,
            },
            stamp_ttl_secs: self.stamp_ttl_secs,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            author_chars_max: self.author_chars_max,
            post_body_chars_max: self.body_chars_max,
            request_body_bytes_max: self.request_body_bytes_max,
            connections_max: self.connections_max,
            request_timeout_secs: self.request_timeout_secs,
            header_read_timeout_secs: self.header_read_timeout_secs,
            audit_lag_max: self.audit_lag_max,
            rate: RateLimits {
                accounts_per_minute: self.rate_accounts_per_minute,
                purchases_per_minute: self.rate_purchases_per_minute,
                auth_failures_per_minute: self.rate_auth_failures_per_minute,
            },
            trusted_proxies: self.trusted_proxies.clone(),
            ..Limits::default()
        }
    }
}

/// The named bounds of the `--database-*` limits.
const DATABASE_POOL_MIN: usize = 2;
const DATABASE_POOL_MAX: usize = 1000;
const DATABASE_TIMEOUT_MS_MIN: u64 = 100;
const DATABASE_TIMEOUT_MS_MAX: u64 = 600_000;

/// Opens the store: PostgreSQL with `--database`, otherwise sled under the data directory.
fn open_store(args: &ServeArgs) -> Result<Arc<dyn Store>, String> {
    let Some(url) = &args.database else {
        let store =
            SledStore::open_with_cache(&args.data_dir.join("db"), args.cache_mib * 1024 * 1024)
                .map_err(|e| e.to_string())?;
        tracing::info!(cache_mib = args.cache_mib, "sled database, page cache");
        return Ok(Arc::new(store));
    };
    if !(DATABASE_POOL_MIN..=DATABASE_POOL_MAX).contains(&args.database_pool_size) {
        return Err(format!(
            "--database-pool-size must be {DATABASE_POOL_MIN} to {DATABASE_POOL_MAX}, not {}",
            args.database_pool_size
        ));
    }
    for (flag, value) in [
        (
            "--database-connect-timeout-ms",
            args.database_connect_timeout_ms,
        ),
        (
            "--database-statement-timeout-ms",
            args.database_statement_timeout_ms,
        ),
    ] {
        if !(DATABASE_TIMEOUT_MS_MIN..=DATABASE_TIMEOUT_MS_MAX).contains(&value) {
            return Err(format!(
                "{flag} must be {DATABASE_TIMEOUT_MS_MIN} to {DATABASE_TIMEOUT_MS_MAX}, not {value}"
            ));
        }
    }
    let limits = PgLimits {
        ca_file: args.database_ca_file.clone(),
        pool_size: args.database_pool_size,
        connect_timeout: Duration::from_millis(args.database_connect_timeout_ms),
        statement_timeout: Duration::from_millis(args.database_statement_timeout_ms),
    };
    let store =
        PgStore::open(url, &limits).map_err(|e| format!("database {}: {e}", redact_url(url)))?;
    tracing::info!(database = %redact_url(url), ?limits, "PostgreSQL database");
    Ok(Arc::new(store))
}

/// A database URL without its password, for messages and the log.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Reads a secret file, refusing one that group or others can read (as key files are).
fn read_private_file(path: &Path) -> Result<String, String> {
    let mode = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:o}: it must not be readable by group or others (chmod 600)",
            path.display(),
            mode & 0o777
        ));
    }
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The admin token: `PENNYPOST_ADMIN_TOKEN`, or the contents of `--admin-token-file`, or one
/// generated into `data_dir/admin_token` (mode 0600) on first start and read back later.
fn admin_token(data_dir: &Path, token_file: Option<&Path>) -> Result<String, String> {
    let from_env = std::env::var("PENNYPOST_ADMIN_TOKEN").ok();
    if let (Some(_), Some(file)) = (&from_env, token_file) {
        return Err(format!(
            "the admin token is given twice, in PENNYPOST_ADMIN_TOKEN and in --admin-token-file \
             {} (admin_token_file): keep one",
            file.display()
        ));
    }
    if let Some(token) = from_env {
        if token.trim().is_empty() {
            return Err("PENNYPOST_ADMIN_TOKEN is set but empty".into());
        }
        tracing::info!("admin token from the environment (PENNYPOST_ADMIN_TOKEN)");
        return Ok(token.trim().to_string());
    }
    if let Some(file) = token_file {
        let token = read_private_file(file)
            .map_err(|e| format!("--admin-token-file (admin_token_file): {e}"))?;
        let token = token.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            return Err(format!(
                "--admin-token-file {} (admin_token_file) is empty: put the token in it",
                file.display()
            ));
        }
        tracing::info!(path = %file.display(), "admin token from --admin-token-file");
        return Ok(token.to_string());
    }
    let path = data_dir.join("admin_token");
    if path.exists() {
        let token = read_private_file(&path)?;
        tracing::info!(path = %path.display(), "admin token read from file");
        return Ok(token.trim().to_string());
    }
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let token = format!("ppadm_{}", hex::encode(secret));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "generated admin token; it is in this file");
    eprintln!("admin token written to {}", path.display());
    Ok(token)
}

/// The keys the ledger published, with their public keys. A data directory written before
/// public keys were recorded beside each key's status lacks them; only when such a key's
/// secret file is also missing (so the file cannot say) is the ledger read for its `key`
/// entries, once per start.
fn published_keys(store: &dyn Store, keys_dir: &Path) -> Result<Vec<keys::PublishedKey>, String> {
    let mut published = store.published_keys().map_err(|e| e.to_string())?;
    let unknown =
        |p: &keys::PublishedKey| p.public_key.is_none() && !keys::has_key_file(keys_dir, &p.kid);
    if !published.iter().any(unknown) {
        return Ok(published);
    }
    tracing::info!("reading the ledger for the public keys of published keys");
    let size = store.ledger_size().map_err(|e| e.to_string())?;
    let mut start = 0;
    while start < size {
        let page = store.entries(start, 1000).map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        start += page.len() as u64;
        for entry in page {
            let Ok(Entry::Key {
                kid,
                public_key,
                time,
            }) = serde_json::from_slice(&entry)
            else {
                continue;
            };
            for key in published.iter_mut().filter(|p| p.kid.to_hex() == kid) {
                if key.public_key.is_none() {
                    key.public_key = Some(public_key.clone());
                    key.published_at = Timestamp::parse_rfc3339(&time).unwrap_or(key.published_at);
                }
            }
        }
    }
    Ok(published)
}

/// The fields of a `key` ledger entry that [`published_keys`] needs.
#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Entry {
    Key {
        kid: String,
        public_key: String,
        time: String,
    },
    #[serde(other)]
    Other,
}

/// Opens everything and builds the service (used by `serve` and by tests that embed the server).
pub async fn build(args: &ServeArgs) -> Result<Arc<App>, String> {
    let economy = args.economy();
    let limits = args.limits();
    economy.validate().map_err(|e| e.to_string())?;
    limits.validate(&economy).map_err(|e| e.to_string())?;
    let providers = args
        .payments
        .config()
        .build(&economy.policy.currency)
        .map_err(|e| e.to_string())?;
    let enabled: Vec<&str> = providers.all().iter().map(|p| p.name()).collect();
    tracing::info!(
        providers = ?enabled,
        payment_min = providers.payment_min,
        payment_max = providers.payment_max,
        "payment providers"
    );
    if !keys::ledger_origin_is_valid(&args.ledger_origin) {
        return Err(format!(
            "--ledger-origin must be 1 to {} characters without spaces, control characters or \
             '+' (it is the checkpoint's origin line and its key's name)",
            keys::LEDGER_ORIGIN_CHARS_MAX
        ));
    }
    if !(CACHE_MIB_MIN..=CACHE_MIB_MAX).contains(&args.cache_mib) {
        return Err(format!(
            "--cache-mib must be {CACHE_MIB_MIN} to {CACHE_MIB_MAX}, not {}",
            args.cache_mib
        ));
    }
    if args.data_dir.exists() && !args.data_dir.is_dir() {
        return Err(format!(
            "--data-dir {} is not a directory",
            args.data_dir.display()
        ));
    }
    fs::create_dir_all(&args.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            args.data_dir.display()
        )
    })?;
    fs::set_permissions(&args.data_dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    let now = Timestamp::now();
    let store = open_store(args)?;
    let published = published_keys(store.as_ref(), &args.keys_dir)?;
    let keyring = keys::load(&args.keys_dir, &published, args.retire_missing_keys, now)
        .map_err(|e| e.to_string())?;
    let ledger_key = keys::load_or_create_ledger_key(&args.keys_dir, &args.ledger_origin, now)
        .map_err(|e| e.to_string())?;
    let token = admin_token(&args.data_dir, args.admin_token_file.as_deref())?;
    tracing::info!(?economy, ?limits, "configuration");
    let app = App::start(AppConfig {
        store,
        keyring,
        ledger_key,
        origin: args.ledger_origin.clone(),
        economy,
        limits,
        admin_token: token,
        providers,
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(app))
}

/// Completes on SIGINT or SIGTERM (the server's and the gate's graceful shutdown).
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}

pub fn main(args: ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        // The ports first: a start that cannot listen creates no directory, key or token.
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(2);
            }
        };
        let metrics_socket = match args.metrics_listen {
            Some(address) => match tokio::net::TcpListener::bind(address).await {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("error: cannot listen for metrics on {address}: {e}");
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        // Before the service starts: the writer and the verifier keep handles to the series.
        let metrics = match args.metrics_listen.map(|_| crate::telemetry::install()) {
            Some(Ok(handle)) => Some(handle),
            Some(Err(e)) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            None => None,
        };
        let service = match build(&args).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let metrics_listener = match (metrics_socket, metrics) {
            (Some(listener), Some(handle)) => Some((listener, handle)),
            _ => None,
        };
        tracing::info!(address = %local, "listening");
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("pennypost listening on http://{local}");
        let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(());
        let metrics_task = metrics_listener.map(|(listener, handle)| {
            let address = listener.local_addr().map(crate::telemetry::metrics_url);
            let address = address.unwrap_or_default();
            tracing::info!(%address, "serving metrics");
            // The second line: where the metrics are, for the same reason.
            println!("pennypost metrics on {address}");
            let mut stopped = metrics_stopped;
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            let store = service.mint.store().clone();
            let pools = move || crate::telemetry::record_pools(&store.pools());
            tokio::spawn(crate::telemetry::serve(listener, handle, pools, shutdown))
        });
        let served = crate::http::run(listener, service, shutdown_signal()).await;
        drop(stop_metrics);
        if let Some(task) = metrics_task {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_an_address_or_a_host_name_and_says_which_forms() {
        assert_eq!(
            listen_address("127.0.0.1:18085"),
            Ok("127.0.0.1:18085".parse().expect("address"))
        );
        assert_eq!(
            listen_address("[::1]:80"),
            Ok("[::1]:80".parse().expect("address"))
        );
        let resolved = listen_address("localhost:18085").expect("localhost resolves");
        assert_eq!(resolved.port(), 18085);
        assert!(resolved.ip().is_loopback(), "{resolved}");
        for bad in [
            "localhost",
            "18085",
            ":18085",
            "localhost:port",
            "nowhere",
            "",
        ] {
            let error = listen_address(bad).expect_err(bad);
            assert!(error.contains("HOST:PORT"), "{bad}: {error}");
        }
    }

    /// API.md, "Command line": the defaults of `serve` with no flags and no environment.
    #[test]
    fn serve_defaults_are_the_contracts() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        // Only the variables `serve` reads would stand in for the defaults; scripts/test sets
        // others (PENNYPOST_TEST_*), which must not stop the check.
        let read: Vec<String> = <Cli as clap::CommandFactory>::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        assert!(read.iter().any(|n| n == "PENNYPOST_LISTEN"), "{read:?}");
        let named: Vec<&String> = read
            .iter()
            .filter(|name| std::env::var_os(name).is_some())
            .collect();
        if !named.is_empty() {
            // Never a silent skip: the environment would stand in for the defaults.
            eprintln!("not run: the environment sets {named:?}");
            return;
        }
        let args = <Cli as clap::Parser>::try_parse_from(["serve"])
            .expect("no flags parse")
            .serve;
        assert_eq!(args.listen, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(args.data_dir, PathBuf::from("./data"));
        assert_eq!(args.keys_dir, PathBuf::from("./keys"));
        assert_eq!(args.stamp_price, 1);
        assert_eq!((args.post_cost, args.vote_cost), (1, 1));
        assert_eq!(args.stamp_ttl_secs, 31_536_000, "one year");
    }

    #[test]
    fn the_admin_token_file_is_private_and_not_given_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        fs::write(&file, "from-file\n").expect("write");
        if std::env::var_os("PENNYPOST_ADMIN_TOKEN").is_some() {
            let error = admin_token(dir.path(), Some(&file)).expect_err("two tokens");
            assert!(error.contains("keep one"), "{error}");
        } else {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
            let error = admin_token(dir.path(), Some(&file)).expect_err("readable by others");
            assert!(error.contains("chmod 600"), "{error}");
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
            assert_eq!(
                admin_token(dir.path(), Some(&file)).as_deref(),
                Ok("from-file")
            );
            fs::write(&file, "\n").expect("write");
            let error = admin_token(dir.path(), Some(&file)).expect_err("empty");
            assert!(error.contains("is empty"), "{error}");
            assert!(!dir.path().join("admin_token").exists(), "none generated");
        }
    }
}
