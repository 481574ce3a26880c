//! The broker harness (`common::broker`) against a real tansu: a broker
//! starts on its own port, takes topics and records, keeps them across a
//! restart with sqlite storage, and fails loudly when it cannot start. The
//! Kafka source and sink tests build on these guarantees.

mod common;

use common::broker::Broker;

#[test]
fn a_broker_starts_and_creates_a_four_partition_topic() {
    let broker = Broker::start();
    broker.create_topic("frames", 4);
    assert_eq!(broker.topics().get("frames"), Some(&4), "topics on {}", broker.addr);

    broker.produce_one("frames", 3, "hello");
    assert_eq!(broker.consume("frames", 3), ["hello"]);
    assert!(broker.consume("frames", 0).is_empty());
}

#[test]
fn brokers_run_side_by_side_on_their_own_ports() {
    let first = Broker::start();
    let second = Broker::start();
    assert_ne!(first.addr, second.addr);

    first.create_topic("only-on-the-first", 1);
    assert!(first.topics().contains_key("only-on-the-first"));
    assert!(!second.topics().contains_key("only-on-the-first"), "the brokers share state");
}

#[test]
fn a_sqlite_broker_keeps_topics_and_records_across_a_restart() {
    let storage = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_sqlite(storage.path());
    broker.create_topic("durable", 4);
    for partition in 0..4 {
        broker.produce_one("durable", partition, &format!("before-{partition}"));
    }
    let addr = broker.addr.clone();

    broker.restart();

    assert_eq!(broker.addr, addr, "a restarted broker keeps its address");
    assert_eq!(broker.topics().get("durable"), Some(&4));
    for partition in 0..4 {
        assert_eq!(broker.consume("durable", partition), [format!("before-{partition}")], "partition {partition}");
    }
    // Offsets go on where they stopped: a new record lands after the old one.
    broker.produce_one("durable", 2, "after");
    assert_eq!(broker.consume("durable", 2), ["before-2", "after"]);
}

#[test]
fn a_memory_broker_comes_back_empty_after_a_restart() {
    let mut broker = Broker::start();
    broker.create_topic("forgotten", 2);
    broker.restart();
    assert!(broker.topics().is_empty(), "topics after a restart: {:?}", broker.topics());
}

#[test]
#[should_panic(expected = "could not start the tansu broker")]
fn a_broker_that_cannot_open_its_storage_fails_the_test() {
    let storage = tempfile::tempdir().unwrap();
    // A directory where the sqlite file should be: tansu cannot open it.
    std::fs::create_dir(storage.path().join("tansu.db")).unwrap();
    Broker::start_sqlite(storage.path());
}
