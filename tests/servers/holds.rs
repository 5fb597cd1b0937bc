//! A hold made on one server holds on the others: they refuse to spend or hold its stamps,
//! a capture on another server spends them once, and a release on a third frees them at once.

use serde_json::json;

use crate::harness::Service;
use crate::pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_on_one_server_holds_on_the_others() {
    let service = Service::start(pg::TestDatabase::new(), 2, &[]);
    let (_buyer, stamps) = service.stamps(0, 2).await;
    let hold = |server: usize, stamp: String, context: &'static str| {
        let service = &service;
        async move {
            service
                .post(
                    server,
                    "/v1/stamps/hold",
                    None,
                    json!({"stamps": [stamp], "context": context, "ttl_secs": 60}),
                )
                .await
        }
    };

    // Held on server 0: server 1 neither spends nor holds it.
    let held = hold(0, stamps[0].clone(), "across").await;
    assert_eq!(held.status, 201, "{:?}", held.body);
    let hold_id = held.body["hold_id"]
        .as_str()
        .expect("a hold id")
        .to_string();
    let redeem = service
        .redeem(1, &stamps[0], "on the other server")
        .await
        .expect("an answer");
    assert_eq!((redeem.status, redeem.code()), (409, "stamp_held"));
    let again = hold(1, stamps[0].clone(), "twice").await;
    assert_eq!((again.status, again.code()), (409, "stamp_held"));
    let state = service.get(1, &format!("/v1/holds/{hold_id}")).await;
    assert_eq!(state.body["state"], "held", "{:?}", state.body);

    // Captured on server 1, once; server 0 answers the same capture.
    let capture = format!("/v1/holds/{hold_id}/capture");
    let first = service.post(1, &capture, None, json!({})).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = service.post(0, &capture, None, json!({})).await;
    assert_eq!((second.status, &second.body), (200, &first.body));
    let redeem = service
        .redeem(0, &stamps[0], "after the capture")
        .await
        .expect("an answer");
    assert_eq!((redeem.status, redeem.code()), (409, "stamp_already_spent"));

    // Held on server 1, released on server 0: spendable on server 1 at once.
    let held = hold(1, stamps[1].clone(), "to release").await;
    assert_eq!(held.status, 201, "{:?}", held.body);
    let hold_id = held.body["hold_id"]
        .as_str()
        .expect("a hold id")
        .to_string();
    let released = service
        .post(0, &format!("/v1/holds/{hold_id}/release"), None, json!({}))
        .await;
    assert_eq!(released.status, 200, "{:?}", released.body);
    let redeem = service
        .redeem(1, &stamps[1], "after the release")
        .await
        .expect("an answer");
    assert_eq!(redeem.status, 201, "{:?}", redeem.body);
}
