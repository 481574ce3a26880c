#!/usr/bin/env python3
"""The Python baseline for scripts/bench-kafka.sh: unique users per minute
from a Kafka topic, the way the challenge's earlier Python answer counts them.

A confluent-kafka consumer (librdkafka underneath) in a consumer group,
auto.offset.reset=earliest and enable.partition.eof=true, fetch.wait.max.ms
at librdkafka's default unless --fetch-wait-ms says otherwise (tansu holds
every fetch for the full wait, so scripts/bench-kafka.sh passes 10 there, as
kuniq and the bare Rust loop use), polling batches of 1000 (the earlier
answer's sweet spot); json.loads of every message and a dict of
minute -> set(uid). It stops once every partition of the topic is at its end
and as many messages were seen as the partitions' watermarks say the topic
holds, then prints "MINUTE<TAB>UNIQUE_USERS" lines, sorted, on stdout and one
JSON summary line on stderr.

Usage: python_consumer.py -b 127.0.0.1:9092 -t frames -G group-1
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition


def main():
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-b", "--brokers", required=True)
    parser.add_argument("-t", "--topic", required=True)
    parser.add_argument("-G", "--group", required=True)
    parser.add_argument("--batch", type=int, default=1000, help="messages per consume() call [default: 1000]")
    parser.add_argument(
        "--fetch-wait-ms", type=int, help="librdkafka's fetch.wait.max.ms [default: librdkafka's, 500]"
    )
    args = parser.parse_args()

    config = {
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
    }
    if args.fetch_wait_ms is not None:
        config["fetch.wait.max.ms"] = args.fetch_wait_ms
    consumer = Consumer(config)
    metadata = consumer.list_topics(args.topic, timeout=30)
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        sys.exit(f"error: topic '{args.topic}' does not exist or has no partitions")
    partitions = sorted(topic.partitions)
    expected = 0
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30)
        expected += high - low

    consumer.subscribe([args.topic])
    minutes = {}
    messages = 0
    at_end = set()
    last_progress = time.monotonic()
    while True:
        batch = consumer.consume(args.batch, timeout=0.1)
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                sys.exit(f"error: {err}")
            at_end.discard(msg.partition())
            messages += 1
            frame = json.loads(msg.value())
            minute = frame["ts"] // 60 * 60
            users = minutes.get(minute)
            if users is None:
                users = minutes[minute] = set()
            users.add(frame["uid"])
        if batch:
            last_progress = time.monotonic()
        if messages >= expected and all(p in at_end for p in partitions):
            break
        if time.monotonic() - last_progress > 60:
            sys.exit(f"error: no progress for 60 s: {messages} of {expected} messages, at end {sorted(at_end)}")
    elapsed = time.perf_counter() - started
    consumer.close()

    out = sys.stdout
    for minute in sorted(minutes):
        out.write(f"{minute}\t{len(minutes[minute])}\n")
    summary = {"messages": messages, "expected": expected, "minutes": len(minutes), "elapsed_secs": round(elapsed, 6)}
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
