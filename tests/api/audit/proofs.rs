//! A client's receipts, checked as the ledger's contract tells an outsider to: the `ledger_index`
//! of a credit, a purchase and a redeem answer is proven included under later checkpoints, and
//! an earlier checkpoint consistent with a later one, by RFC 9162 verifiers written here from the
//! RFC's text (§2.1.3.2, §2.1.4.2), and the checkpoint is read and its signature checked by hand
//! from the C2SP signed-note and tlog-checkpoint formats; the C2SP tlog-tiles of a log past one
//! full tile rebuild the signed root. Nothing here uses the code the server or the auditor uses
//! for those formats (`tlog_tiles`, `signed_note`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::*;

type Hash = [u8; 32];

fn node(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

fn leaf(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entry)
        .finalize()
        .into()
}

/// RFC 9162 §2.1.3.2, step by step.
fn inclusion_holds(index: u64, size: u64, leaf_hash: Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, leaf_hash);
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2, step by step (for `first < second`).
fn consistency_holds(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    path: &[Hash],
) -> bool {
    if path.is_empty() || first == 0 || first >= second {
        return false;
    }
    let mut path = path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_root);
    }
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *first_root && sr == *second_root && snode == 0
}

/// A checkpoint read by hand: the note's text is `<origin>\n<size>\n<base64 root>\n`, then a
/// blank line, then one signature line `— <name> <base64(key id ‖ signature)>`, where the key
/// id is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key) and the signature is
/// Ed25519 over the text. Checks the key's `vkey` is built the same way. Returns (size, root).
fn read_checkpoint(note: &str, key: &Value) -> (u64, Hash) {
    let (origin, name) = (
        key["origin"].as_str().expect("origin"),
        key["name"].as_str().expect("name"),
    );
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["public_key"].as_str().expect("public_key"))
        .expect("base64url")
        .try_into()
        .expect("32 bytes");
    let (text, signatures) = note
        .split_once("\n\n")
        .expect("a blank line after the text");
    let text = format!("{text}\n");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{note}");
    assert_eq!(lines[0], origin);
    let size: u64 = lines[1].parse().expect("a decimal size");
    assert_eq!(
        lines[1],
        size.to_string(),
        "no leading zeros or signs: {note}"
    );
    let root: Hash = STANDARD
        .decode(lines[2])
        .expect("standard padded base64")
        .try_into()
        .expect("32 bytes");
    assert_eq!(lines[2], STANDARD.encode(root));

    let key_id: [u8; 4] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([0x01])
        .chain_update(public)
        .finalize()[..4]
        .try_into()
        .expect("4 bytes");
    let vkey = format!(
        "{name}+{}+{}",
        hex::encode(key_id),
        STANDARD.encode([&[0x01][..], &public].concat())
    );
    assert_eq!(key["vkey"], vkey.as_str());

    let line = signatures.strip_suffix('\n').expect("a final newline");
    assert!(!line.contains('\n'), "one signature: {note}");
    let signed = line
        .strip_prefix(&format!("\u{2014} {name} "))
        .expect("an em dash, the key's name and a space");
    let signed = STANDARD.decode(signed).expect("standard base64");
    assert_eq!(signed.len(), 4 + 64, "{note}");
    assert_eq!(signed[..4], key_id);
    let signature = Signature::from_slice(&signed[4..]).expect("64 bytes");
    VerifyingKey::from_bytes(&public)
        .expect("a key")
        .verify_strict(text.as_bytes(), &signature)
        .expect("the signature verifies over the note's text");
    (size, root)
}

fn hashes(proof: &Value) -> Vec<Hash> {
    proof["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().expect("a string"))
                .expect("standard padded base64")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

async fn checkpoint(server: &TestServer, key: &Value) -> (u64, Hash) {
    let (status, note) = server.get_text("/v1/ledger/checkpoint").await;
    assert_eq!(status, 200, "{note}");
    read_checkpoint(&note, key)
}

/// The entry at `index`, exactly as served (without its newline).
async fn entry(server: &TestServer, index: u64) -> Vec<u8> {
    let (status, page) = server
        .get_text(&format!("/v1/ledger/entries?start={index}&limit=1"))
        .await;
    assert_eq!(status, 200, "{page}");
    let line = page
        .strip_suffix('\n')
        .expect("one line")
        .as_bytes()
        .to_vec();
    let parsed: Value = serde_json::from_slice(&line).expect("json");
    assert_eq!(parsed["index"], index);
    line
}

async fn proves_inclusion(server: &TestServer, index: u64, size: u64, root: &Hash) {
    let (status, proof) = server
        .get(&format!(
            "/v1/ledger/proof/inclusion?index={index}&size={size}"
        ))
        .await;
    assert_eq!(status, 200, "{proof}");
    let path = hashes(&proof);
    let hash = leaf(&entry(server, index).await);
    assert!(
        inclusion_holds(index, size, hash, &path, root),
        "entry {index} in {size}"
    );
    // The verifier can fail: another leaf, or a changed path, does not verify.
    assert!(!inclusion_holds(index, size, leaf(b"{}"), &path, root));
    if let Some(first) = path.first() {
        let mut bent = path.clone();
        bent[0] = node(first, first);
        assert!(!inclusion_holds(index, size, hash, &bent, root));
    }
}

#[tokio::test]
async fn receipts_are_proven_under_later_checkpoints_and_the_log_only_grows() {
    let server = TestServer::start().await;
    let (_, key) = server.get("/v1/ledger/key").await;
    let (account, api_key) = server.account().await;
    let (status, credited) = server.credit(&account, 10, "proofs-1").await;
    assert_eq!(status, 200, "{credited}");
    let (status, bought) = server.purchase(&api_key, 3, None).await;
    assert_eq!(status, 201, "{bought}");
    let stamps = crate::helpers::strings(&bought["stamps"]);
    let (status, redeemed) = server.redeem(&stamps[0], "proofs").await;
    assert_eq!(status, 201, "{redeemed}");
    let receipts: Vec<u64> = [&credited, &bought, &redeemed]
        .iter()
        .map(|answer| answer["ledger_index"].as_u64().expect("a ledger_index"))
        .collect();

    let (first, first_root) = checkpoint(&server, &key).await;
    assert!(
        first > receipts[2],
        "the checkpoint covers every answered change"
    );
    for &index in &receipts {
        proves_inclusion(&server, index, first, &first_root).await;
    }

    let (status, later) = server.redeem(&stamps[1], "proofs, later").await;
    assert_eq!(status, 201, "{later}");
    let (status, _) = server.redeem(&stamps[2], "proofs, later still").await;
    assert_eq!(status, 201);
    let (second, second_root) = checkpoint(&server, &key).await;
    assert!(second > first);
    for index in receipts.iter().copied().chain([0, second - 1]) {
        proves_inclusion(&server, index, second, &second_root).await;
    }

    let (status, proof) = server
        .get(&format!(
            "/v1/ledger/proof/consistency?from={first}&to={second}"
        ))
        .await;
    assert_eq!(status, 200, "{proof}");
    let path = hashes(&proof);
    assert!(consistency_holds(
        first,
        second,
        &first_root,
        &second_root,
        &path
    ));
    assert!(!consistency_holds(
        first,
        second,
        &second_root,
        &second_root,
        &path
    ));
    // Every earlier size is a prefix too, power of two or not: its root recomputed from the
    // entries it covers (RFC 9162 §2.1.1), the whole log's root the signed one.
    let mut leaves = Vec::new();
    for index in 0..second {
        leaves.push(leaf(&entry(&server, index).await));
    }
    assert_eq!(mth(&leaves), second_root);
    for from in 1..second {
        let (status, proof) = server
            .get(&format!(
                "/v1/ledger/proof/consistency?from={from}&to={second}"
            ))
            .await;
        assert_eq!(status, 200, "{proof}");
        let old_root = mth(&leaves[..usize::try_from(from).expect("small")]);
        assert!(
            consistency_holds(from, second, &old_root, &second_root, &hashes(&proof)),
            "from {from} to {second}"
        );
    }
    // The same size: the empty proof.
    let (status, same) = server
        .get(&format!(
            "/v1/ledger/proof/consistency?from={second}&to={second}"
        ))
        .await;
    assert_eq!(status, 200, "{same}");
    assert!(hashes(&same).is_empty(), "{same}");
}

/// RFC 9162 §2.1.1: the Merkle tree head of `leaves` (at least one), split at the largest
/// power of two below the count.
fn mth(leaves: &[Hash]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let mut k = 1;
    while k * 2 < leaves.len() {
        k *= 2;
    }
    node(&mth(&leaves[..k]), &mth(&leaves[k..]))
}

/// C2SP tlog-tiles past one full tile: 260 entries give a full level-0 hash tile and entry
/// bundle (no `.p/` suffix), partial ones of width 4 after them, and a level-1 tile whose one
/// hash is the root of the first 256 leaves; together they rebuild the signed root.
#[tokio::test]
async fn full_and_level_one_tiles_rebuild_the_signed_root() {
    let server = TestServer::start().await;
    let (_, key) = server.get("/v1/ledger/key").await;
    let (_, stamps) = server.stamps(256, 256).await;
    let mut tasks = Vec::new();
    for (i, stamp) in stamps.into_iter().enumerate() {
        let (client, url) = (server.client.clone(), server.url("/v1/stamps/redeem"));
        tasks.push(tokio::spawn(async move {
            let body = json!({"stamp": stamp, "context": format!("tiles/{i}")});
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").as_u16(), 201);
    }
    let (size, root) = checkpoint(&server, &key).await;
    assert_eq!(size, 260, "key, policy, credit, purchase and 256 redeems");
    let mut entries = Vec::new();
    let mut leaves = Vec::new();
    for index in 0..size {
        let bytes = entry(&server, index).await;
        leaves.push(leaf(&bytes));
        entries.push(bytes);
    }
    let get_bytes = |path: &str| {
        let (client, url) = (server.client.clone(), server.url(path));
        async move {
            let response = client.get(url).send().await.expect("get");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("bytes").to_vec())
        }
    };
    let hashes_of = |bytes: &[u8]| -> Vec<Hash> {
        bytes
            .chunks(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect()
    };
    let bundle_of = |mut bytes: &[u8]| {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let length = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            out.push(bytes[2..2 + length].to_vec());
            bytes = &bytes[2 + length..];
        }
        out
    };

    let (status, full) = get_bytes("/tile/0/000").await;
    assert_eq!(status, 200);
    assert_eq!(hashes_of(&full), leaves[..256]);
    let (status, rest) = get_bytes("/tile/0/001.p/4").await;
    assert_eq!(status, 200);
    assert_eq!(hashes_of(&rest), leaves[256..]);
    let (status, upper) = get_bytes("/tile/1/000.p/1").await;
    assert_eq!(status, 200);
    assert_eq!(hashes_of(&upper), [mth(&leaves[..256])]);
    assert_eq!(node(&hashes_of(&upper)[0], &mth(&hashes_of(&rest))), root);

    let (status, bundle) = get_bytes("/tile/entries/000").await;
    assert_eq!(status, 200);
    assert_eq!(bundle_of(&bundle), entries[..256]);
    let (status, bundle) = get_bytes("/tile/entries/001.p/4").await;
    assert_eq!(status, 200);
    assert_eq!(bundle_of(&bundle), entries[256..]);
    // Not yet full, or not a tile path: none exists.
    for path in [
        "/tile/0/001",
        "/tile/entries/001",
        "/tile/1/000",
        "/tile/0/001.p/5",
    ] {
        assert_eq!(get_bytes(path).await.0, 404, "{path}");
    }
}
