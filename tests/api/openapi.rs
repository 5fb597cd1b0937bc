//! `GET /openapi.json` against the server that serves it: every route the router serves is in
//! the document with its method (and nothing else is), every route of docs/api.md too, every
//! documented error code appears with its status, and the schemas of real answers hold: every
//! field of a real answer is a property of its schema, and every required property is there.

use serde_json::Value;

use crate::helpers::{TestServer, ADMIN_TOKEN};

/// Every route the router serves (`src/http/mod.rs`), as the OpenAPI document names it
/// (`{*path}` is `{path}` there).
const ROUTER: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/app.js"),
    ("get", "/healthz"),
    ("get", "/v1/keys"),
    ("post", "/v1/accounts"),
    ("get", "/v1/account"),
    ("post", "/v1/admin/accounts/{account_id}/credit"),
    ("post", "/v1/admin/accounts/{account_id}/debit"),
    ("get", "/v1/prices"),
    ("post", "/v1/stamps/purchase"),
    ("post", "/v1/quote"),
    ("post", "/v1/stamps/verify"),
    ("post", "/v1/stamps/redeem"),
    ("post", "/v1/stamps/hold"),
    ("get", "/v1/holds/{hold_id}"),
    ("post", "/v1/holds/{hold_id}/capture"),
    ("post", "/v1/holds/{hold_id}/release"),
    ("get", "/v1/stamps/{stamp_id}"),
    ("post", "/v1/posts"),
    ("get", "/v1/posts"),
    ("get", "/v1/posts/{post_id}"),
    ("post", "/v1/posts/{post_id}/votes"),
    ("get", "/v1/ledger/checkpoint"),
    ("get", "/v1/ledger/key"),
    ("get", "/v1/ledger/entries"),
    ("get", "/v1/ledger/proof/inclusion"),
    ("get", "/v1/ledger/proof/consistency"),
    ("get", "/v1/audit"),
    ("post", "/v1/admin/backup"),
    ("get", "/v1/payments/providers"),
    ("post", "/v1/payments"),
    ("get", "/v1/payments"),
    ("get", "/v1/payments/{payment_id}"),
    ("post", "/v1/payments/webhooks/stripe"),
    ("post", "/v1/payments/webhooks/btcpay"),
    ("get", "/pay/{payment_id}"),
    ("post", "/pay/{payment_id}"),
    ("get", "/v1/admin/payments"),
    ("post", "/v1/admin/payments/{payment_id}/settle"),
    ("get", "/openapi.json"),
    ("get", "/checkpoint"),
    ("get", "/tile/{path}"),
];

fn api_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md")
}

/// The route summary table of docs/api.md: `| GET | `/path` | auth | success |`.
fn documented_routes() -> Vec<(String, String)> {
    api_md()
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let method = cells.get(1)?;
            if !matches!(*method, "GET" | "POST") {
                return None;
            }
            let path = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((method.to_lowercase(), path.to_string()))
        })
        .collect()
}

/// The error code table of docs/api.md (its section "Error codes"): `| `code` | 409 | …`.
fn documented_codes() -> Vec<(String, String)> {
    let text = api_md();
    let (_, section) = text
        .split_once("\n## Error codes")
        .expect("an Error codes section");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let status = cells.get(2)?;
            let is_code = code.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            let is_status = status.len() == 3 && status.chars().all(|c| c.is_ascii_digit());
            (is_code && is_status).then(|| (code.to_string(), status.to_string()))
        })
        .collect()
}

/// A request path for a route template: ids become the nil UUID, the tile path a tile.
fn concrete(path: &str) -> String {
    path.replace("{account_id}", &uuid::Uuid::nil().to_string())
        .replace("{stamp_id}", &uuid::Uuid::nil().to_string())
        .replace("{post_id}", &uuid::Uuid::nil().to_string())
        .replace("{payment_id}", &uuid::Uuid::nil().to_string())
        .replace("{path}", "0/000")
}

/// Follows a `$ref` into `components.schemas`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .expect("a schema reference");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `value` against `schema` (the subset of JSON Schema utoipa writes: `$ref`, `oneOf`,
/// `allOf`, `type`, `enum`, `properties`, `required`, `items`); every field of an object must
/// be one of its schema's properties. Returns what does not hold.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut wrong = Vec::new();
    if let Some(choices) = schema["oneOf"].as_array() {
        if !choices.iter().any(|c| check(doc, c, value, at).is_empty()) {
            wrong.push(format!(
                "{at}: {value} matches none of {}",
                Value::from(choices.clone())
            ));
        }
        return wrong;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            wrong.extend(check(doc, part, value, at));
        }
    }
    let actual = type_of(value);
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |t: &&str| *t == actual || (*t == "number" && actual == "integer");
    if !allowed.is_empty() && !allowed.iter().any(fits) {
        wrong.push(format!("{at}: {actual} where the schema says {allowed:?}"));
        return wrong;
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            wrong.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let (Value::Object(fields), Some(properties)) = (value, schema["properties"].as_object()) {
        for (name, field) in fields {
            match properties.get(name) {
                Some(property) => {
                    wrong.extend(check(doc, property, field, &format!("{at}.{name}")))
                }
                None => wrong.push(format!("{at}.{name}: not a property of the schema")),
            }
        }
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("a name");
            if !fields.contains_key(name) {
                wrong.push(format!("{at}.{name}: required, missing"));
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, element) in items.iter().enumerate() {
            wrong.extend(check(doc, item, element, &format!("{at}[{i}]")));
        }
    }
    wrong
}

/// Checks a real answer against the schema the document gives for `method path` at `status`.
fn assert_answer(doc: &Value, method: &str, path: &str, status: u16, answer: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    let content = response["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} {status}: no content in the document"));
    let (_, media) = content.iter().next().expect("a media type");
    let schema = &media["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: no schema");
    // A schema that checks nothing would pass anything: make sure it names properties.
    assert!(
        resolve(doc, schema)["properties"].is_object(),
        "{method} {path} {status}: the schema has no properties"
    );
    let wrong = check(doc, schema, answer, "answer");
    assert!(
        wrong.is_empty(),
        "{method} {path} {status}:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn the_document_describes_the_server_that_serves_it() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/json"));
    let doc: Value = response.json().await.expect("JSON");
    assert!(
        doc["openapi"].as_str().expect("version").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");

    // Router, document and docs/api.md name the same routes.
    let mut in_document: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    in_document.sort();
    let mut router: Vec<(String, String)> = ROUTER
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    router.sort();
    assert_eq!(
        in_document, router,
        "the document's routes are the router's"
    );
    let mut documented = documented_routes();
    documented.sort();
    assert_eq!(
        documented, router,
        "docs/api.md's route table is the router's"
    );

    // Every route of the document is served: no 404 "no such route", no 405.
    for (method, path) in &in_document {
        let url = server.url(&concrete(path));
        let request = match method.as_str() {
            "get" => server.client.get(&url),
            "post" => server.client.post(&url).json(&serde_json::json!({})),
            other => panic!("unexpected method {other}"),
        };
        let (status, body) = server.send(request).await;
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !(status == 404 && body["detail"] == "no such route"),
            "{method} {path} is in the document but not served: {body}"
        );
    }

    // Every documented error code is in the document, answered with its status somewhere.
    let codes = documented_codes();
    assert!(codes.len() >= 21, "{codes:?}");
    let enumerated = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the ErrorCode enum");
    for (code, status) in &codes {
        assert!(
            enumerated.contains(&Value::from(code.as_str())),
            "{code} not in ErrorCode"
        );
        let named = format!("`{code}`");
        let answered = paths.values().any(|item| {
            item.as_object().expect("item").values().any(|operation| {
                operation["responses"][status.as_str()]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&named))
            })
        });
        assert!(answered, "no route answers {status} {code} in the document");
    }

    // The schemas hold for real answers.
    let (status, prices) = server.get("/v1/prices").await;
    assert_eq!(status, 200);
    assert_answer(&doc, "get", "/v1/prices", 200, &prices);
    let (id, key) = server.account().await;
    let (status, account) = server.get_auth("/v1/account", &key).await;
    assert_eq!(status, 200);
    assert_answer(&doc, "get", "/v1/account", 200, &account);
    let (status, credit) = server.credit(&id, 10, "openapi-1").await;
    assert_eq!(status, 200);
    assert_answer(
        &doc,
        "post",
        "/v1/admin/accounts/{account_id}/credit",
        200,
        &credit,
    );
    let (status, purchase) = server.purchase(&key, 3, None).await;
    assert_eq!(status, 201, "{purchase}");
    assert_answer(&doc, "post", "/v1/stamps/purchase", 201, &purchase);
    // A debit that revokes (7 − 8: the last stamp comes back): its answer with `revoked`.
    let (status, debit) = server
        .post(
            &format!("/v1/admin/accounts/{id}/debit"),
            Some(crate::helpers::ADMIN_TOKEN),
            serde_json::json!({"amount": 8, "reference": "openapi-debit"}),
        )
        .await;
    assert_eq!(status, 200, "{debit}");
    assert!(debit["revoked"].is_object(), "{debit}");
    assert_answer(
        &doc,
        "post",
        "/v1/admin/accounts/{account_id}/debit",
        200,
        &debit,
    );
    let (_, after) = server.get_auth("/v1/account", &key).await;
    assert_answer(&doc, "get", "/v1/account", 200, &after);
    let stamps: Vec<String> = purchase["stamps"]
        .as_array()
        .expect("stamps")
        .iter()
        .map(|s| s.as_str().expect("stamp").to_string())
        .collect();
    let (status, verify) = server.verify(&stamps[0]).await;
    assert_answer(&doc, "post", "/v1/stamps/verify", status, &verify);
    let (status, garbage) = server.verify("pp1.garbage").await;
    assert_answer(&doc, "post", "/v1/stamps/verify", status, &garbage);
    let post = serde_json::json!({"author": "schema", "body": "checked", "stamps": [stamps[0]]});
    let (status, post) = server.post("/v1/posts", None, post).await;
    assert_eq!(status, 201, "{post}");
    assert_answer(&doc, "post", "/v1/posts", 201, &post);
    let post_id = post["post_id"].as_str().expect("post id");
    let (status, got) = server.get(&format!("/v1/posts/{post_id}")).await;
    assert_answer(&doc, "get", "/v1/posts/{post_id}", status, &got);
    let (status, page) = server.get("/v1/posts?limit=1").await;
    assert_answer(&doc, "get", "/v1/posts", status, &page);
    let (status, redeemed) = server.redeem(&stamps[1], "openapi").await;
    assert_eq!(status, 201);
    assert_answer(&doc, "post", "/v1/stamps/redeem", 201, &redeemed);
    let stamp = crate::helpers::stamp_id(&stamps[1]);
    let (status, state) = server.get(&format!("/v1/stamps/{stamp}")).await;
    assert_answer(&doc, "get", "/v1/stamps/{stamp_id}", status, &state);
    let (status, keys) = server.get("/v1/keys").await;
    assert_answer(&doc, "get", "/v1/keys", status, &keys);
    let (status, audit) = server.get("/v1/audit").await;
    assert_answer(&doc, "get", "/v1/audit", status, &audit);
    // An error answer is a Problem.
    let (status, problem) = server
        .get(&format!("/v1/posts/{}", uuid::Uuid::nil()))
        .await;
    assert_eq!(status, 404);
    assert_answer(&doc, "get", "/v1/posts/{post_id}", 404, &problem);
    let (status, problem) = server
        .post(
            "/v1/admin/backup",
            Some(ADMIN_TOKEN),
            serde_json::json!({"path": "relative"}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_answer(&doc, "post", "/v1/admin/backup", 400, &problem);
}
