//! `pennypost serve --config FILE` (or `PENNYPOST_CONFIG`): a TOML file of `serve` settings.
//!
//! Its keys are the long flag names of `serve` without the dashes, `_` for `-`
//! (`stamp_price = 2` for `--stamp-price 2`, `trusted_proxy = ["10.0.0.1"]` for
//! `--trusted-proxy`); the flags themselves are declared once, in [`super::serve::ServeArgs`],
//! and this module reads them from clap rather than listing them again.
//!
//! Precedence: a flag beats the environment, which beats the file, which beats the built-in
//! default. The file's values become the defaults of a second parse of the same command line,
//! so clap's own order (command line, then environment, then default) gives exactly that.
//!
//! A key that is not a flag of `serve`, or a value of the wrong type (a string for a number,
//! `listen = "nowhere"`), stops the start with a message naming the key; so does a file that
//! cannot be read or is not TOML.

use std::any::TypeId;
use std::path::Path;

use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory as _, FromArgMatches as _};

use super::Cli;

/// The `serve` argument that names the file; a file cannot name another.
const CONFIG_ARG: &str = "config";

/// Parses the command line; for `serve --config FILE`, again with the file's values as the
/// defaults. Clap's own errors (and `--help`) exit as usual; a bad file is an `Err`.
pub fn parse() -> Result<Cli, String> {
    let matches = Cli::command().get_matches();
    let Some(file) = config_path(&matches) else {
        return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
    };
    let command = with_file_defaults(Cli::command(), Path::new(&file))?;
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// The `--config` of a `serve` command line (or its environment variable).
fn config_path(matches: &ArgMatches) -> Option<std::path::PathBuf> {
    let (name, serve) = matches.subcommand()?;
    if name != "serve" {
        return None;
    }
    serve.get_one::<std::path::PathBuf>(CONFIG_ARG).cloned()
}

/// `command` with the values of the config file at `path` as the defaults of `serve`.
pub fn with_file_defaults(command: Command, path: &Path) -> Result<Command, String> {
    let fail = |detail: String| format!("config file {}: {detail}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(format!("not valid TOML: {}", e.message())))?;
    let serve = command
        .find_subcommand("serve")
        .ok_or_else(|| fail("no serve command".into()))?;
    let mut defaults = Vec::new();
    for (key, value) in &table {
        let arg = serve
            .get_arguments()
            .find(|arg| config_key(arg).as_deref() == Some(key.as_str()))
            .ok_or_else(|| fail(unknown_key(key)))?;
        let values = file_values(arg, value).map_err(|e| fail(format!("key `{key}`: {e}")))?;
        check_values(arg, &values).map_err(|e| fail(format!("key `{key}`: {e}")))?;
        defaults.push((arg.get_id().clone(), values));
    }
    Ok(command.mut_subcommand("serve", |mut serve| {
        for (id, values) in defaults {
            serve = serve.mut_arg(id, |arg| arg.default_values(values));
        }
        serve
    }))
}

/// Why `key` is refused. The admin token is a secret and has no flag, so it has no key
/// either: the message says where it goes instead.
fn unknown_key(key: &str) -> String {
    if key == "admin_token" {
        return "unknown key `admin_token`: the admin token is not written in the config file; \
                set PENNYPOST_ADMIN_TOKEN in the server's environment, or name a file holding \
                it (mode 0600) with `admin_token_file = \"/path/to/file\"`"
            .into();
    }
    format!("unknown key `{key}`: not a flag of `pennypost serve`")
}

/// The config key of a `serve` argument: its long name with `_` for `-`. Help, version and
/// `--config` itself have none.
fn config_key(arg: &Arg) -> Option<String> {
    if arg.get_id() == CONFIG_ARG
        || matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
    {
        return None;
    }
    arg.get_long().map(|long| long.replace('-', "_"))
}

/// Whether an argument's values are integers.
fn is_integer(arg: &Arg) -> bool {
    let id = arg.get_value_parser().type_id();
    [
        TypeId::of::<u64>(),
        TypeId::of::<u32>(),
        TypeId::of::<u16>(),
        TypeId::of::<u8>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
        TypeId::of::<i32>(),
    ]
    .into_iter()
    .any(|integer| id == integer)
}

/// The file's value of `arg` as the text values clap parses, when its TOML type fits: a
/// boolean for a switch, an integer for a number, a string (or a list of strings, for a flag
/// that repeats) for anything else.
fn file_values(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let wrong = |expected: &str| {
        Err(format!(
            "expected {expected}, found {} {value}",
            value.type_str()
        ))
    };
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            _ => wrong("true or false"),
        },
        ArgAction::Append => match value {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s.clone()),
                    _ => Err(format!(
                        "expected a list of strings, found {} {item} in it",
                        item.type_str()
                    )),
                })
                .collect(),
            _ => wrong("a string or a list of strings"),
        },
        _ if is_integer(arg) => match value {
            toml::Value::Integer(i) => Ok(vec![i.to_string()]),
            _ => wrong("an integer"),
        },
        _ => match value {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            _ => wrong("a string"),
        },
    }
}

/// Parses `values` with the argument's own parser, so a value clap would refuse (a negative
/// count, an address that does not parse, an unknown vote pricing) is refused here, under its
/// key's name.
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return Ok(());
    }
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    // The argument alone, without its environment variable (which could hide the value).
    let probe = Command::new("config")
        .no_binary_name(true)
        .arg(arg.clone().env(None::<&str>).required(false));
    let words: Vec<String> = values.iter().map(|v| format!("--{long}={v}")).collect();
    probe.try_get_matches_from(words).map(|_| ()).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        first.trim_start_matches("error: ").to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_with(file: &str, args: &[&str]) -> Result<super::super::serve::ServeArgs, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pennypost.toml");
        std::fs::write(&path, file).expect("write");
        let command = with_file_defaults(Cli::command(), &path)?;
        let mut argv = vec!["pennypost", "serve"];
        argv.extend_from_slice(args);
        let matches = command
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        match Cli::from_arg_matches(&matches).map_err(|e| e.to_string())? {
            Cli {
                command: super::super::Command::Serve(args),
                ..
            } => Ok(*args),
            _ => Err("not serve".into()),
        }
    }

    #[test]
    fn file_values_fill_what_the_command_line_left_out() {
        let args = serve_with(
            "listen = \"127.0.0.1:9999\"\nstamp_price = 2\nretire_missing_keys = true\n\
             trusted_proxy = [\"10.0.0.1\", \"10.0.0.2\"]\nvote_pricing = \"flat\"\n",
            &["--stamp-price", "5"],
        )
        .expect("valid");
        assert_eq!(args.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(args.stamp_price, 5, "the flag wins");
        assert!(args.retire_missing_keys);
        assert_eq!(args.trusted_proxies.len(), 2);
        assert_eq!(args.vote_pricing.as_str(), "flat");
        assert_eq!(args.post_cost, 1, "the default stays");
        // A host name is resolved; the admin token's file is a key like any flag.
        let args = serve_with(
            "listen = \"localhost:9999\"\nadmin_token_file = \"/run/secrets/token\"\n",
            &[],
        )
        .expect("valid");
        assert_eq!(args.listen.port(), 9999);
        assert!(args.listen.ip().is_loopback(), "{}", args.listen);
        assert_eq!(
            args.admin_token_file.as_deref(),
            Some(Path::new("/run/secrets/token"))
        );
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        for (file, key) in [
            ("database_url = \"x\"\n", "`database_url`"),
            ("database_pool_size = \"many\"\n", "`database_pool_size`"),
            ("config = \"other.toml\"\n", "`config`"),
            ("help = true\n", "`help`"),
            ("stamp_price = \"two\"\n", "`stamp_price`"),
            ("stamp_price = -1\n", "`stamp_price`"),
            ("listen = 8080\n", "`listen`"),
            ("listen = \"nowhere\"\n", "`listen`"),
            ("retire_missing_keys = \"yes\"\n", "`retire_missing_keys`"),
            ("trusted_proxy = [1]\n", "`trusted_proxy`"),
            ("vote_pricing = \"cubic\"\n", "`vote_pricing`"),
        ] {
            let error = serve_with(file, &[]).expect_err(file);
            assert!(error.contains(key), "{file}: {error}");
        }
        let error = serve_with("admin_token = \"secret\"\n", &[]).expect_err("admin_token");
        assert!(error.contains("PENNYPOST_ADMIN_TOKEN"), "{error}");
        assert!(error.contains("admin_token_file"), "{error}");
        assert!(!error.contains("secret"), "the value stays out: {error}");
        let error = serve_with("stamp_price = \n", &[]).expect_err("not TOML");
        assert!(error.contains("not valid TOML"), "{error}");
    }

    #[test]
    fn every_flag_of_serve_has_a_key() {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").expect("serve");
        let keys: Vec<String> = serve.get_arguments().filter_map(config_key).collect();
        for key in [
            "listen",
            "data_dir",
            "keys_dir",
            "stamp_price",
            "trusted_proxy",
            "metrics_listen",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == "config" || k == "help"));
    }
}
