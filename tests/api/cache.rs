//! Board pages are cached as rendered bytes; every post or vote must show on the next read.

use serde_json::json;

use crate::helpers::TestServer;

#[tokio::test]
async fn reads_after_writes_see_the_writes() {
    let server = TestServer::start().await;
    let (_key, stamps) = server.stamps(100, 20).await;
    let mut stamps = stamps.into_iter();
    let (status, post) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "a", "body": "first", "stamps": [stamps.next()]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let post_id = post["post_id"].as_str().expect("id").to_string();
    for round in 1..=5i64 {
        // Read twice (the second read is served from the cache), then change the board.
        for _ in 0..2 {
            let (_, page) = server.get("/v1/posts?limit=10").await;
            let first = &page["posts"][0];
            assert_eq!(first["post_id"], post_id.as_str(), "{page}");
            assert_eq!(first["score"], round - 1, "round {round}: {page}");
        }
        let (status, body) = server
            .post(
                &format!("/v1/posts/{post_id}/votes"),
                None,
                json!({"direction": "up", "stamps": [stamps.next()]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, second) = server
        .post(
            "/v1/posts",
            None,
            json!({"author": "b", "body": "second", "stamps": [stamps.next()]}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let (_, page) = server.get("/v1/posts?limit=10").await;
    assert_eq!(page["posts"][0]["post_id"], second["post_id"], "{page}");
    assert_eq!(page["posts"][1]["score"], 5, "{page}");
    // A different page size is a different page.
    let (_, one) = server.get("/v1/posts?limit=1").await;
    assert_eq!(one["posts"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["next_before"], second["post_id"]);
}
