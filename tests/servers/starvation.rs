//! Reads never starve the writer: a server's batches run on connections of their own, so a
//! burst of reads stuck on the database (here: behind a table lock another session holds)
//! takes every read connection but keeps no redeem or purchase waiting.

use std::time::{Duration, Instant};

use crate::harness::Service;
use crate::pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stuck_on_the_database_keep_no_write_waiting() {
    // Two read connections, a short wait for a free one, and statements allowed to wait long
    // (the stuck reads must stay stuck while the writes are measured).
    let service = Service::start(
        pg::TestDatabase::new(),
        1,
        &[
            "--database-pool-size",
            "2",
            "--database-connect-timeout-ms",
            "1000",
            "--database-statement-timeout-ms",
            "30000",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let (buyer, stamps) = service.stamps(0, 4).await;

    // Another session locks the posts table: every board read now waits for it.
    let url = service.database_url();
    let (locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock posts");
    let reads: Vec<_> = (0..6)
        .map(|_| {
            let request = service.http.get(service.server(0).url("/v1/posts"));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Until the read connections are all taken by stuck reads: then a read waits its full
    // second for a free connection and answers 503 (as do the board reads that found none).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = service.get_auth(0, "/v1/account", &buyer.key).await;
        if answer.status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "reads never starved: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Redeems go through meanwhile, promptly. (A purchase would not: it reads the account of
    // its API key first, on a read connection.)
    let started = Instant::now();
    for (n, stamp) in stamps.iter().enumerate() {
        let answer = service
            .redeem(0, stamp, &format!("starved/{n}"))
            .await
            .expect("transport");
        assert_eq!(answer.status, 201, "{:?}\n{}", answer.body, service.logs());
    }
    let writes = started.elapsed();
    assert!(
        writes < Duration::from_secs(5),
        "4 redeems took {writes:?} while reads were stuck"
    );

    let stuck = reads.iter().filter(|r| !r.is_finished()).count();
    assert!(stuck >= 1, "no board read was still stuck behind the lock");
    // The metrics show it: every read connection in use, the writer's pool apart.
    let gauge = |name: &'static str| service.metric(0, name);
    let read_max = gauge("pennypost_database_connections_max{pool=\"read\"}").await;
    let read_in_use = gauge("pennypost_database_connections{pool=\"read\",state=\"in_use\"}").await;
    assert_eq!(read_max, 2.0);
    assert_eq!(read_in_use, read_max, "the read pool should be all in use");
    let writer_max = gauge("pennypost_database_connections_max{pool=\"writer\"}").await;
    assert_eq!(writer_max, 2.0);

    // The lock goes; the stuck reads are answered, the others were told to come back.
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    let mut statuses = Vec::new();
    for read in reads {
        statuses.push(read.await.expect("task").expect("transport"));
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= stuck,
        "{statuses:?}"
    );
    eprintln!("starvation: 4 redeems in {writes:?} with every read connection stuck");
}
