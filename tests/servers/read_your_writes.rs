//! A change answered 2xx by one server is visible on the others at once, with no wait: a post
//! (on the first page of the board and by its id), a vote (the post's score, by id and on the
//! first page, whose cached copy the other servers must drop), a redeem (the stamp's state, and
//! the size of the ledger the others sign), and a purchase (the balance).
//! Every round writes on another server and reads on the other two; the readers have the page
//! cached from the round before.

use pennypost::api::{AccountResponse, Post, PostsPageResponse, PurchaseResponse, VoteResponse};
use serde_json::json;

use crate::harness::{stamp_id, Service};
use crate::pg;

const ROUNDS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_server_is_read_at_once_on_the_others() {
    let service = Service::start(pg::TestDatabase::new(), 3, &[]);
    let (buyer, stamps) = service.stamps(0, 3 * ROUNDS as u64).await;
    let mut stamps = stamps.into_iter();
    service.credit(0, &buyer, ROUNDS as u64).await;
    // Every reader has the first page in its cache before the first write.
    for server in 0..3 {
        assert_eq!(service.get(server, "/v1/posts").await.status, 200);
    }
    let mut checks = 0;
    for round in 0..ROUNDS {
        let writer = round % 3;
        let readers = [(writer + 1) % 3, (writer + 2) % 3];

        // A post.
        let answer = service
            .post(
                writer,
                "/v1/posts",
                None,
                json!({"author": "ryw", "body": format!("round {round}"),
                       "stamps": [stamps.next().expect("a stamp")]}),
            )
            .await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        let post: Post = serde_json::from_value(answer.body).expect("a post");
        for &reader in &readers {
            let first = first_page(&service, reader).await;
            assert_eq!(
                first.posts.first().map(|p| p.post_id),
                Some(post.post_id),
                "round {round}: server {}'s first page lacks the post just made on server {}",
                reader + 1,
                writer + 1
            );
            assert_eq!(first.posts[0], post);
            let by_id = service
                .get(reader, &format!("/v1/posts/{}", post.post_id))
                .await;
            assert_eq!(by_id.status, 200, "round {round}: {:?}", by_id.body);
            assert_eq!(
                serde_json::from_value::<Post>(by_id.body).expect("a post"),
                post
            );
            checks += 2;
        }

        // A vote on it: the new score, by id and on the (cached) first page.
        let direction = if round % 2 == 0 { "up" } else { "down" };
        let answer = service
            .post(
                writer,
                &format!("/v1/posts/{}/votes", post.post_id),
                None,
                json!({"direction": direction, "stamps": [stamps.next().expect("a stamp")]}),
            )
            .await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        let vote: VoteResponse = serde_json::from_value(answer.body).expect("a vote");
        assert_eq!(vote.score, if direction == "up" { 1 } else { -1 });
        for &reader in &readers {
            let by_id = service
                .get(reader, &format!("/v1/posts/{}", post.post_id))
                .await;
            assert_eq!(by_id.status, 200, "{:?}", by_id.body);
            assert_eq!(
                by_id.body["score"],
                vote.score,
                "round {round}: server {} shows another score than server {} answered",
                reader + 1,
                writer + 1
            );
            let first = first_page(&service, reader).await;
            assert_eq!(first.posts[0].post_id, post.post_id);
            assert_eq!(
                first.posts[0].score,
                vote.score,
                "round {round}: server {}'s first page shows a stale score",
                reader + 1
            );
            checks += 2;
        }

        // A redeem: the stamp reads spent at its index, and the ledger the readers sign
        // includes its entry.
        let stamp = stamps.next().expect("a stamp");
        let answer = service
            .redeem(writer, &stamp, &format!("ryw/{round}"))
            .await
            .expect("transport");
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        let index = answer.body["ledger_index"].as_u64().expect("ledger_index");
        for &reader in &readers {
            let status = service
                .get(reader, &format!("/v1/stamps/{}", stamp_id(&stamp)))
                .await;
            assert_eq!(status.status, 200, "{:?}", status.body);
            assert_eq!(
                (&status.body["state"], &status.body["ledger_index"]),
                (&json!("spent"), &json!(index)),
                "round {round}: server {} shows a stale stamp",
                reader + 1
            );
            let size = service.ledger_size(reader).await;
            assert!(
                size > index,
                "round {round}: server {} signs size {size}, without entry {index}",
                reader + 1
            );
            checks += 2;
        }

        // A purchase: the balance and the stamps bought.
        let answer = service
            .purchase(writer, &buyer.key, 1)
            .await
            .expect("transport");
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        let purchase: PurchaseResponse = serde_json::from_value(answer.body).expect("a purchase");
        for &reader in &readers {
            let account = service.get_auth(reader, "/v1/account", &buyer.key).await;
            assert_eq!(account.status, 200, "{:?}", account.body);
            let account: AccountResponse =
                serde_json::from_value(account.body).expect("an account");
            assert_eq!(
                (
                    u64::try_from(account.balance).expect("no debt"),
                    account.stamps_purchased
                ),
                (purchase.balance, 3 * ROUNDS as u64 + round as u64 + 1),
                "round {round}: server {} shows a stale account",
                reader + 1
            );
            checks += 1;
        }
    }
    assert_eq!(checks, ROUNDS * 2 * 7);
    eprintln!("read your writes: {ROUNDS} rounds, {checks} reads on the other servers, all fresh");
}

async fn first_page(service: &Service, server: usize) -> PostsPageResponse {
    let answer = service.get(server, "/v1/posts").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    serde_json::from_value(answer.body).expect("a page")
}
