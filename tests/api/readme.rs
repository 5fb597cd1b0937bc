//! README.md's walkthroughs, run as written against a fresh server with the defaults: the curl
//! block of "Five minutes with curl", then the command-line block after it, in the order a
//! reader follows them. The answers the README shows (`# {…}` lines) are compared with what
//! the server printed: every field shown must be there, and every value shown whole (numbers,
//! `true`, `null`, strings without `…`) must be the one printed. So the README cannot drift
//! from the server (a `ledger_index` off by one, a name taken twice) without this failing.
//!
//! The blocks run in bash with `set -euo pipefail`, needing `curl` and `jq` as the README's
//! reader does; only the port and the placeholders (`<account_id>`, `<post_id>`, `<pay_url>`,
//! `<payment_id>`, `pp1.…`) are filled in. `pennypost` is this build's binary, first on PATH.
//! The server runs with the flags of the README's `serve` line (the `test` payment provider),
//! on a port chosen first, since `--public-url` names it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const README: &str = include_str!("../../README.md");

/// The `sh` code blocks of the README section whose heading starts with `heading`.
fn blocks_of(heading: &str) -> Vec<String> {
    let start = README
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let section = &README[start + 1..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("closed block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

/// One answer the README shows: its fields, with the value when shown whole.
#[derive(Debug)]
struct Shown {
    line: String,
    fields: Vec<(String, Option<Value>)>,
}

/// The top-level fields of a README answer such as
/// `{"balance":95,"count":5,…,"stamps":["pp1.…",…],"total":5}`.
fn shown(line: &str) -> Shown {
    let text = line.trim_start_matches('#').trim();
    let mut fields = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            '"' if depth == 1 => {
                let rest: String = bytes[i + 1..].iter().collect();
                let end = rest.find('"').expect("closed key");
                if rest[end + 1..].starts_with(':') {
                    let key = rest[..end].to_string();
                    let after = &rest[end + 2..];
                    let value = serde_json::Deserializer::from_str(after)
                        .into_iter::<Value>()
                        .next()
                        .and_then(Result::ok)
                        .filter(|v| !v.to_string().contains('…'));
                    fields.push((key, value));
                    i += end + 2;
                    continue;
                }
                in_string = true;
            }
            '"' => in_string = true,
            _ => {}
        }
        i += 1;
    }
    Shown {
        line: line.to_string(),
        fields,
    }
}

/// `script` with each README answer line replaced by a marker printed in its place, so the
/// output before each marker is what the commands before it printed.
fn with_markers(script: &str) -> (String, Vec<Shown>) {
    let mut answers = Vec::new();
    let mut out = String::from("set -euo pipefail\n");
    for line in script.lines() {
        if line.trim_start().starts_with("# {") {
            out.push_str(&format!("printf '\\n@@answer {}\\n'\n", answers.len()));
            answers.push(shown(line));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, answers)
}

/// Runs `script` in bash in `dir` with this build's `pennypost` first on PATH.
fn bash(script: &str, dir: &Path, env: &[(&str, &str)]) -> String {
    let binary = Path::new(env!("CARGO_BIN_EXE_pennypost"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("PENNYPOST_WALLET")
        .env_remove("PENNYPOST_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("bash (and curl and jq) to run the README");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the README's commands failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Every field shown must be in `printed` (the last JSON object line before its marker), with
/// the value shown when shown whole.
fn compare(answers: &[Shown], stdout: &str) {
    let mut chunks = stdout.split("\n@@answer ");
    let mut before = chunks.next().unwrap_or_default().to_string();
    for (n, chunk) in chunks.enumerate() {
        let (marker, rest) = chunk.split_once('\n').unwrap_or((chunk, ""));
        assert_eq!(marker.trim(), n.to_string(), "marker order");
        let printed = before
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("nothing printed before {:?}", answers[n].line));
        let printed: Value = serde_json::from_str(printed)
            .unwrap_or_else(|e| panic!("{printed:?} is not JSON ({e}) for {:?}", answers[n].line));
        for (field, value) in &answers[n].fields {
            let got = printed.get(field).unwrap_or_else(|| {
                panic!(
                    "README shows {:?} but the server printed no {field:?}: {printed}",
                    answers[n].line
                )
            });
            if let Some(value) = value {
                assert_eq!(
                    got, value,
                    "README shows {:?}; the server printed {printed}",
                    answers[n].line
                );
            }
        }
        before = rest.to_string();
    }
}

#[test]
fn the_parser_reads_the_shapes_the_readme_shows() {
    let s = shown(
        r#"# {"balance":95,"count":5,…,"stamps":["pp1.…","pp1.…",…],"total":5,"code":null,"id":"5c1e…"}"#,
    );
    let fields: Vec<(&str, Option<String>)> = s
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_ref().map(Value::to_string)))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("balance", Some("95".into())),
            ("count", Some("5".into())),
            ("stamps", None),
            ("total", Some("5".into())),
            ("code", Some("null".into())),
            ("id", None),
        ]
    );
}

/// The flags the README's walkthrough starts the server with, after `serve` (the port is the
/// test's own).
const SERVE_FLAGS: &str = "--payment-provider test --public-url http://127.0.0.1:8080";

/// The curl walkthrough, then the command-line one, against one fresh server with the
/// defaults (the policy entry included) and the README's flags, in the README's order.
#[tokio::test]
async fn the_readme_walkthroughs_print_what_the_readme_shows() {
    let serve_line =
        format!("PENNYPOST_ADMIN_TOKEN=s3cret cargo run --release -- serve {SERVE_FLAGS}\n");
    assert!(
        blocks_of("Five minutes with curl").contains(&serve_line),
        "the README starts the server with {SERVE_FLAGS:?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let public_url = format!("http://{address}");
    let mut args = vec![
        "--listen",
        &address,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--keys-dir",
        keys.to_str().expect("utf-8"),
    ];
    let flags = SERVE_FLAGS.replace("http://127.0.0.1:8080", &public_url);
    args.extend(flags.split(' '));
    let served = crate::process::start(
        &args,
        &[("PENNYPOST_ADMIN_TOKEN", "s3cret")],
        &dir.path().join("serve.log"),
        false,
    );
    let base = served.base_url.clone();
    assert_eq!(base, public_url);
    let host = base.strip_prefix("http://").expect("http").to_string();
    let port_in = |script: &str| {
        script
            .replace("http://127.0.0.1:8080", &base)
            .replace("localhost:8080", &host)
    };
    let blocks = blocks_of("Five minutes with curl");
    let curl = blocks
        .iter()
        .find(|b| b.contains("curl -s"))
        .expect("the curl block");
    let cli = blocks
        .iter()
        .find(|b| b.contains("pennypost account create"))
        .expect("the command-line block");
    let work = dir.path().join("reader");
    std::fs::create_dir(&work).expect("mkdir");

    let (script, answers) = with_markers(&port_in(curl));
    assert!(answers.len() >= 6, "the README shows answers: {answers:?}");
    let stdout = tokio::task::spawn_blocking({
        let work = work.clone();
        move || bash(&script, &work, &[])
    })
    .await
    .expect("join");
    compare(&answers, &stdout);

    // The command-line block, with its placeholders filled in as a reader would.
    let wallet = "pennypost-wallet.json";
    let newest_payment = |field: &str| {
        format!(
            "$(curl -s {base}/v1/payments -H \"authorization: Bearer $(jq -r .api_key {wallet})\" \
             | jq -r '.payments[0].{field}')"
        )
    };
    let script = port_in(cli)
        .replace("<account_id>", &format!("$(jq -r .account_id {wallet})"))
        .replace("<pay_url>", &newest_payment("pay_url"))
        .replace("<payment_id>", &newest_payment("payment_id"))
        .replace(
            "<post_id>",
            &format!("$(curl -s {base}/v1/posts | jq -r '.posts[0].post_id')"),
        )
        .replace("pp1.…", &format!("$(jq -r '.stamps[0]' {wallet})"));
    let (script, answers) = with_markers(&script);
    let stdout = tokio::task::spawn_blocking({
        let base = base.clone();
        move || bash(&script, &work, &[("PENNYPOST_SERVER", &base)])
    })
    .await
    .expect("join");
    compare(&answers, &stdout);
    assert!(stdout.contains("posted "), "{stdout}");
    assert!(stdout.contains("voted up"), "{stdout}");
}
