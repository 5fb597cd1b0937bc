//! The background ledger check runs on one server at a time: the holder of the database's
//! leader lock. It passes on when its holder goes away.

use pennypost::store::{PgLimits, PgStore};

use crate::pg;

#[test]
fn one_store_at_a_time_leads_and_the_lead_passes_on() {
    let database = pg::TestDatabase::new();
    let open = || PgStore::open(&database.url, &PgLimits::default()).expect("open");
    let (first, second, third) = (open(), open(), open());
    assert!(
        first.audit_leader().expect("first"),
        "the first to ask leads"
    );
    assert!(!second.audit_leader().expect("second"), "a second leader");
    assert!(!third.audit_leader().expect("third"), "a third leader");
    // Asking again keeps the lead where it is.
    assert!(first.audit_leader().expect("first again"));
    assert!(!second.audit_leader().expect("second again"));
    // The leader goes away (its connections close): exactly one of the others takes over.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let leaders = loop {
        let leaders = [&second, &third]
            .iter()
            .filter(|s| s.audit_leader().expect("ask"))
            .count();
        if leaders > 0 || std::time::Instant::now() > deadline {
            break leaders;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(leaders, 1, "after the leader left, one other store leads");
}

/// Servers that start together on an empty database take turns on the migration lock: every
/// one opens, and the schema is made once.
#[test]
fn stores_opened_together_on_an_empty_database_make_the_schema_once() {
    let database = pg::TestDatabase::new();
    let opened: Vec<Result<PgStore, String>> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    PgStore::open(&database.url, &PgLimits::default()).map_err(|e| e.to_string())
                })
            })
            .collect();
        starts
            .into_iter()
            .map(|s| s.join().expect("thread"))
            .collect()
    });
    for store in &opened {
        assert!(
            store.is_ok(),
            "a store failed to open: {:?}",
            store.as_ref().err()
        );
    }
    // Every migration recorded exactly once, 1 to the newest with no gap, however many this
    // build knows.
    let rows = pg::psql(
        &database.url,
        "SELECT count(*) || ' ' || count(DISTINCT version) || ' ' || max(version) \
         FROM schema_migrations",
    );
    let counts: Vec<&str> = rows.split_whitespace().collect();
    assert!(
        counts.len() == 3 && counts[0] == counts[1] && counts[1] == counts[2] && counts[0] != "0",
        "the migrations table (rows, versions, newest): {rows}"
    );
}
