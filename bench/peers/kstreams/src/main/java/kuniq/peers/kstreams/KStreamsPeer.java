/*
 * kuniq's Kafka Streams peer: unique users per minute of event time, the way a data engineer
 * would count them with Kafka Streams instead of kuniq. scripts/bench-kafka.sh runs it next to
 * kuniq on the same broker and topic; README.md in this directory says the same in prose.
 *
 * Build (Java 17 and Maven; the first build fetches from Maven Central):
 *
 *   mvn -B -q -f bench/peers/kstreams/pom.xml package
 *
 * Run:
 *
 *   java -jar bench/peers/kstreams/target/kuniq-kstreams-peer.jar \
 *       -b 127.0.0.1:9092 -t frames -o uniques --application-id peer-1 \
 *       [--guarantee at_least_once|exactly_once_v2] [--grace-secs 65] [--threads 1] \
 *       [--state-dir DIR] [--sentinel] [--stall-secs 120]
 *
 * The topology (Kafka Streams DSL, every store and internal topic at its defaults: RocksDB,
 * changelogged, replication from the broker's default):
 *
 *   1. frames (the input topic, null keys) with FrameTimestampExtractor: event time = the frame's
 *      top-level ts. Frames that are not usable (Frame.parse) are dropped in the next step and
 *      counted; the extractor gives them the partition's time instead of a negative timestamp so
 *      Kafka Streams does not log a warning per frame.
 *   2. key by uid (flatMap), repartition by uid ("by-uid"), and count frames per (uid, minute)
 *      in a tumbling one-minute window with the grace period, caching disabled so every update
 *      comes out: the update whose count is 1 is the user's first frame in that minute.
 *   3. those first frames, keyed by the minute's start, go to a one-partition repartition topic
 *      ("by-minute"), are counted per minute in the same window, and
 *      suppress(untilWindowCloses) lets one final count per minute through, once stream time
 *      passes the minute's end plus the grace. One partition, because a minute's stream time must
 *      come from every user's frames, not from the few minutes that hash to one partition.
 *   4. the final count goes to the output topic as JSON, key "minute:START" (kuniq's key),
 *      value {"window":"minute","start":S,"end":E,"unique_users":N,"estimator":"exact"} (unix
 *      seconds), and the same line to stdout.
 *
 * Threads: one by default, as Kafka Streams has it. Stream time is kept per task, and the
 * repartition topics merge tasks that read different input partitions, so a task that runs ahead
 * makes the others' frames late. With two threads, the second thread's consumer joins after the
 * first has started, tasks move in a second rebalance while the others keep running, and frames of
 * a 30,000-frame test input were dropped as too late even with 65 s of grace; with one thread,
 * none. One thread still keeps more than a core busy (client I/O threads, RocksDB, GC).
 *
 * Why not the one-step "aggregate a Set of uids per window": Kafka Streams stores an aggregate
 * serialized, so every frame would deserialize and re-serialize its minute's whole set (tens of
 * thousands of uids): quadratic, hours for the benchmark's input. Counting per (uid, minute)
 * first keeps every step constant per frame; the state is the same (one entry per user and
 * minute), kept in the store of step 2.
 *
 * Grace: 65 s by default. kuniq's watermark is the highest ts minus 5 s (--lateness) and a
 * minute takes late frames until the watermark passes its end plus 60 s (--allowed-lateness),
 * so kuniq's last revision of a minute holds the frames that come before ts reaches end + 65 s;
 * Kafka Streams accepts a frame while stream time is below end + grace. The single final result
 * here corresponds to kuniq's last revision, not its first.
 *
 * How a run ends: Kafka Streams never ends on its own. At start the app reads the input
 * topic's size (end minus beginning offsets, with its admin client) and exits once it has
 * processed that many frames and everything they caused downstream: every usable frame counted
 * in step 2 and every first frame counted in step 3 (in-process counters; a run without
 * failures and rebalances, as in the benchmark). It then closes Kafka Streams (the final commit
 * or transaction included), deletes its local state and prints a JSON summary on stderr. Minutes
 * whose end + grace stream time has not passed by then are not emitted: nothing more comes to
 * close them.
 *
 * --sentinel (for checking counts, on a topic of its own): once the input is processed, append
 * one frame per input partition with ts one hour past the highest ts seen, wait until it is
 * processed too, then exit as above. Stream time then passes every real minute, so every minute
 * is emitted; the sentinel's own minute is not. Every real frame has gone through step 3 when
 * they are sent, so they cannot make a real frame late.
 */
package kuniq.peers.kstreams;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAccumulator;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.WindowStore;

/** The command line, the topology and the end of a run; see the comment at the top of the file. */
public final class KStreamsPeer {
    /** The value of the internal records: only their keys matter. */
    private static final byte[] EMPTY = new byte[0];

    /** Sentinel frames are this far past the highest ts seen: past any minute's end + grace. */
    private static final long SENTINEL_AHEAD_SECS = 3600;

    private KStreamsPeer() {}

    /** Progress of the pipeline, for knowing when a run is done and for the summary. */
    static final class Counters {
        /** Input records seen by step 1, usable or not. */
        final LongAdder frames = new LongAdder();
        /** Input records that are not usable frames. */
        final LongAdder skipped = new LongAdder();
        /** Updates out of step 2's (uid, minute) count: one per usable frame not dropped as late. */
        final LongAdder userMinuteUpdates = new LongAdder();
        /** Of those, first frames of a user in a minute: the records sent to step 3. */
        final LongAdder firstFrames = new LongAdder();
        /** Records step 3 has taken from the by-minute topic. */
        final LongAdder minuteInputs = new LongAdder();
        /** Final per-minute counts sent to the output topic. */
        final LongAdder emitted = new LongAdder();
        /** Highest usable ts seen, seconds. */
        final LongAccumulator maxTsSecs = new LongAccumulator(Math::max, -1);
    }

    /** Event time is the frame's ts; see the comment at the top of the file for unusable frames. */
    static final class FrameTimestampExtractor implements TimestampExtractor {
        private final Counters counters;

        FrameTimestampExtractor(Counters counters) {
            this.counters = counters;
        }

        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            Frame frame = Frame.parse((byte[]) record.value());
            if (frame == null) {
                return Math.max(partitionTime, 0);
            }
            counters.maxTsSecs.accumulate(frame.tsSecs);
            return frame.tsSecs * 1000;
        }
    }

    static Topology topology(Options options, Counters counters) {
        TimeWindows minutes =
                TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofSeconds(options.graceSecs));
        StreamsBuilder builder = new StreamsBuilder();

        KStream<byte[], byte[]> frames = builder.stream(
                options.inputTopic,
                Consumed.with(Serdes.ByteArray(), Serdes.ByteArray())
                        .withTimestampExtractor(new FrameTimestampExtractor(counters))
                        .withName("frames"));

        // Step 1: the uid as key. The extractor parsed this frame already, but Kafka Streams
        // offers no way to hand its result on, so the frame's first fields are read again.
        KStream<String, byte[]> byUid = frames.flatMap(
                (key, value) -> {
                    counters.frames.increment();
                    Frame frame = Frame.parse(value);
                    if (frame == null) {
                        counters.skipped.increment();
                        return List.of();
                    }
                    return List.of(KeyValue.pair(frame.uid, EMPTY));
                },
                Named.as("uid-of-frame"));

        // Step 2: frames per (uid, minute). Caching off: with it, the update that says "1" can
        // be merged into a later one before it is forwarded.
        KStream<Long, byte[]> firstFrames = byUid.groupByKey(
                        Grouped.with("by-uid", Serdes.String(), Serdes.ByteArray()))
                .windowedBy(minutes)
                .count(
                        Named.as("frames-per-user-minute"),
                        Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("frames-per-user-minute")
                                .withCachingDisabled())
                .toStream(Named.as("user-minute-updates"))
                .filter(
                        (userMinute, count) -> {
                            boolean first = count != null && count == 1L;
                            // firstFrames before userMinuteUpdates: the run's end reads them the
                            // other way round.
                            if (first) {
                                counters.firstFrames.increment();
                            }
                            counters.userMinuteUpdates.increment();
                            return first;
                        },
                        Named.as("first-frame-of-user-in-minute"))
                .map(
                        (userMinute, count) -> KeyValue.pair(userMinute.window().start(), EMPTY),
                        Named.as("key-by-minute"));

        // Step 3: users per minute, one final record per minute.
        firstFrames
                .repartition(Repartitioned.with(Serdes.Long(), Serdes.ByteArray())
                        .withName("by-minute")
                        .withNumberOfPartitions(1))
                .peek((minute, value) -> counters.minuteInputs.increment(), Named.as("count-minute-inputs"))
                .groupByKey(Grouped.with(Serdes.Long(), Serdes.ByteArray()))
                .windowedBy(minutes)
                .count(Named.as("users-per-minute"), Materialized.as("users-per-minute"))
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded())
                        .withName("until-minute-closes"))
                .toStream(Named.as("final-minutes"))
                .map(
                        (minute, users) -> {
                            long start = minute.window().start() / 1000;
                            long end = minute.window().end() / 1000;
                            return KeyValue.pair(
                                    "minute:" + start,
                                    "{\"window\":\"minute\",\"start\":" + start + ",\"end\":" + end
                                            + ",\"unique_users\":" + users + ",\"estimator\":\"exact\"}");
                        },
                        Named.as("to-json"))
                .peek(
                        (key, json) -> {
                            counters.emitted.increment();
                            synchronized (System.out) {
                                System.out.println(json);
                            }
                        },
                        Named.as("print"))
                .to(options.outputTopic, Produced.with(Serdes.String(), Serdes.String()).withName("uniques"));
        return builder.build();
    }

    static Properties streamsConfig(Options options) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, options.applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrapServers);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, options.guarantee);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, options.threads);
        props.put(StreamsConfig.STATE_DIR_CONFIG, options.stateDir);
        return props;
    }

    /** Records in each partition of the topic: end offset minus beginning offset. */
    static Map<TopicPartition, Long> topicSize(Admin admin, String topic) throws Exception {
        TopicDescription description =
                admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        Map<TopicPartition, OffsetSpec> earliest = new java.util.HashMap<>();
        Map<TopicPartition, OffsetSpec> latest = new java.util.HashMap<>();
        description.partitions().forEach(p -> {
            TopicPartition tp = new TopicPartition(topic, p.partition());
            earliest.put(tp, OffsetSpec.earliest());
            latest.put(tp, OffsetSpec.latest());
        });
        var low = admin.listOffsets(earliest).all().get();
        var high = admin.listOffsets(latest).all().get();
        Map<TopicPartition, Long> sizes = new java.util.TreeMap<>(
                Comparator.comparingInt(TopicPartition::partition));
        for (TopicPartition tp : earliest.keySet()) {
            sizes.put(tp, high.get(tp).offset() - low.get(tp).offset());
        }
        return sizes;
    }

    /**
     * Waits until `expected` input records went through every step (see "How a run ends").
     * Fails when Kafka Streams stops or nothing moves for `stallSecs`. If the counters stand
     * still for 5 s with every frame read but not all of them counted (frames dropped as too
     * late), that is the end too, with a warning.
     */
    static void awaitProcessed(
            KafkaStreams streams, Counters c, long expected, int stallSecs, AtomicReference<Throwable> failure)
            throws InterruptedException {
        long[] last = null;
        long lastChangeNs = System.nanoTime();
        while (true) {
            Throwable t = failure.get();
            if (t != null) {
                throw new IllegalStateException("Kafka Streams failed: " + t, t);
            }
            KafkaStreams.State state = streams.state();
            if (state == KafkaStreams.State.ERROR || state == KafkaStreams.State.NOT_RUNNING
                    || state == KafkaStreams.State.PENDING_ERROR) {
                throw new IllegalStateException("Kafka Streams stopped (state " + state + ")");
            }
            // Read downstream counters after upstream ones: an update counted in step 2 has
            // counted its first frame already.
            long frames = c.frames.sum();
            long skipped = c.skipped.sum();
            long updates = c.userMinuteUpdates.sum();
            long firsts = c.firstFrames.sum();
            long minuteInputs = c.minuteInputs.sum();
            if (frames >= expected && updates == frames - skipped && minuteInputs == firsts) {
                return;
            }
            long[] now = {frames, updates, firsts, minuteInputs};
            if (last == null || !java.util.Arrays.equals(last, now)) {
                last = now;
                lastChangeNs = System.nanoTime();
            } else {
                double quietSecs = (System.nanoTime() - lastChangeNs) / 1e9;
                if (frames >= expected && minuteInputs == firsts && quietSecs >= 5) {
                    System.err.printf(
                            "warning: %d usable frames so far were not counted per user and minute (dropped as"
                                    + " later than the grace period); taking the input as processed%n",
                            frames - skipped - updates);
                    return;
                }
                if (quietSecs >= stallSecs) {
                    throw new IllegalStateException(String.format(
                            "no progress for %d s: %d of %d frames read, %d counted per user and minute, %d of %d"
                                    + " first frames counted per minute",
                            stallSecs, frames, expected, updates, minuteInputs, firsts));
                }
            }
            Thread.sleep(10);
        }
    }

    /** One frame per partition, ts an hour past the highest seen, so stream time closes every minute. */
    static void appendSentinels(Options options, List<TopicPartition> partitions, long tsSecs) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrapServers);
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (TopicPartition tp : partitions) {
                String frame = "{\"uid\":\"kstreams-sentinel-" + tp.partition() + "\",\"ts\":" + tsSecs + "}";
                producer.send(new ProducerRecord<>(tp.topic(), tp.partition(), null,
                        frame.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
            }
            producer.flush();
        }
    }

    /**
     * Removes the run's local state (KafkaStreams.cleanUp() refuses while RocksDB's files are
     * still there after close). Each benchmark run is a fresh application; its state would only
     * fill the disk.
     */
    static void deleteLocalState(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            System.err.println("warning: could not delete " + dir + ": " + e.getMessage());
        }
    }

    /** Sum of Kafka Streams' dropped-records-total over tasks: late and unreadable records. */
    static double droppedRecords(KafkaStreams streams) {
        double dropped = 0;
        for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
            if (e.getKey().name().equals("dropped-records-total")
                    && e.getKey().group().equals("stream-task-metrics")
                    && e.getValue().metricValue() instanceof Double d) {
                dropped += d;
            }
        }
        return dropped;
    }

    private static void logDefault(String property, String value) {
        if (System.getProperty(property) == null) {
            System.setProperty(property, value);
        }
    }

    public static void main(String[] args) throws Exception {
        // Before the first logger exists: warnings and errors only, to stderr; -D on the java
        // command line wins.
        logDefault("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        logDefault("org.slf4j.simpleLogger.logFile", "System.err");
        // Kafka Streams warns once per frame dropped as too late; the summary counts them.
        logDefault("org.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals.KStreamWindowAggregate",
                "error");
        // Its internal topics do not exist for the first metadata requests; said once per topic.
        logDefault("org.slf4j.simpleLogger.log.org.apache.kafka.clients.NetworkClient", "error");
        long startedNs = System.nanoTime();
        Options options = Options.parse(args);

        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrapServers);
        Map<TopicPartition, Long> sizes;
        try (Admin admin = Admin.create(adminProps)) {
            sizes = topicSize(admin, options.inputTopic);
        }
        long expected = sizes.values().stream().mapToLong(Long::longValue).sum();

        Counters counters = new Counters();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        KafkaStreams streams = new KafkaStreams(topology(options, counters), streamsConfig(options));
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        int status = 0;
        double dropped = 0;
        double processedSecs = 0;
        try {
            streams.start();
            awaitProcessed(streams, counters, expected, options.stallSecs, failure);
            processedSecs = (System.nanoTime() - startedNs) / 1e9;
            if (options.sentinel) {
                appendSentinels(options, new ArrayList<>(sizes.keySet()),
                        counters.maxTsSecs.get() + SENTINEL_AHEAD_SECS);
                awaitProcessed(streams, counters, expected + sizes.size(), options.stallSecs, failure);
            }
            dropped = droppedRecords(streams);
        } catch (IllegalStateException e) {
            System.err.println("error: " + e.getMessage());
            status = 1;
        } finally {
            if (!streams.close(Duration.ofSeconds(60))) {
                System.err.println("error: Kafka Streams did not close within 60 s");
                status = 1;
            }
        }
        if (failure.get() != null && status == 0) {
            System.err.println("error: Kafka Streams failed while closing: " + failure.get());
            status = 1;
        }
        deleteLocalState(new File(options.stateDir, options.applicationId).toPath());
        double elapsedSecs = (System.nanoTime() - startedNs) / 1e9;
        System.out.flush();
        System.err.printf(
                "{\"frames\":%d,\"expected\":%d,\"skipped\":%d,\"user_minutes\":%d,\"dropped_records\":%.0f,"
                        + "\"minutes_emitted\":%d,\"guarantee\":\"%s\",\"grace_secs\":%d,\"threads\":%d,"
                        + "\"sentinel\":%b,\"processed_secs\":%.6f,\"elapsed_secs\":%.6f}%n",
                counters.frames.sum(), expected, counters.skipped.sum(), counters.firstFrames.sum(), dropped,
                counters.emitted.sum(), options.guarantee, options.graceSecs, options.threads, options.sentinel,
                processedSecs, elapsedSecs);
        System.exit(status);
    }

    /** The command line, checked. */
    static final class Options {
        String bootstrapServers;
        String inputTopic;
        String outputTopic;
        String applicationId;
        String guarantee = StreamsConfig.AT_LEAST_ONCE;
        int graceSecs = 65;
        int threads = 1;
        String stateDir = new File(System.getProperty("java.io.tmpdir"), "kuniq-kstreams-peer").getPath();
        boolean sentinel;
        int stallSecs = 120;

        static final String USAGE = String.join("\n",
                "usage: java -jar kuniq-kstreams-peer.jar -b BROKERS -t INPUT -o OUTPUT --application-id ID [options]",
                "",
                "Unique users per minute of event time with Kafka Streams; exits once the input topic, as",
                "it was at the start, is processed. Final per-minute records go to OUTPUT and stdout, a JSON",
                "summary to stderr.",
                "",
                "  -b, --bootstrap-servers HOSTS  the brokers",
                "  -t, --input-topic TOPIC        the frames",
                "  -o, --output-topic TOPIC       one record per minute, key minute:START, JSON value",
                "  --application-id ID            Kafka Streams' application.id (its group, its internal",
                "                                 topics' prefix); a fresh one reads the input from the start",
                "  --guarantee G                  at_least_once (default) or exactly_once_v2",
                "  --grace-secs N                 grace period of the one-minute windows [default: 65]",
                "  --threads N                    stream threads [default: 1, Kafka Streams' default]",
                "  --state-dir DIR                local state [default: TMPDIR/kuniq-kstreams-peer]",
                "  --sentinel                     once the input is processed, append a frame an hour",
                "                                 ahead to every partition so every minute is emitted",
                "  --stall-secs N                 fail when nothing moves this long [default: 120]",
                "  -h, --help                     this text");

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                if (arg.equals("-h") || arg.equals("--help")) {
                    System.out.println(USAGE);
                    System.exit(0);
                } else if (arg.equals("--sentinel")) {
                    o.sentinel = true;
                    continue;
                }
                if (i + 1 >= args.length) {
                    usageError(arg + " needs a value");
                }
                String value = args[++i];
                switch (arg) {
                    case "-b", "--bootstrap-servers" -> o.bootstrapServers = value;
                    case "-t", "--input-topic" -> o.inputTopic = value;
                    case "-o", "--output-topic" -> o.outputTopic = value;
                    case "--application-id" -> o.applicationId = value;
                    case "--guarantee" -> {
                        if (!value.equals(StreamsConfig.AT_LEAST_ONCE) && !value.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
                            usageError("--guarantee must be at_least_once or exactly_once_v2, not '" + value + "'");
                        }
                        o.guarantee = value;
                    }
                    case "--grace-secs" -> o.graceSecs = number(arg, value, 0);
                    case "--threads" -> o.threads = number(arg, value, 1);
                    case "--state-dir" -> o.stateDir = value;
                    case "--stall-secs" -> o.stallSecs = number(arg, value, 1);
                    default -> usageError("unknown argument '" + arg + "'");
                }
            }
            if (o.bootstrapServers == null || o.inputTopic == null || o.outputTopic == null || o.applicationId == null) {
                usageError("-b, -t, -o and --application-id are required");
            }
            return o;
        }

        private static int number(String name, String value, int min) {
            try {
                int n = Integer.parseInt(value);
                if (n >= min) {
                    return n;
                }
            } catch (NumberFormatException e) {
                // Falls through to the error below.
            }
            usageError(name + " needs a whole number >= " + min + ", not '" + value + "'");
            return min;
        }

        private static void usageError(String message) {
            System.err.println("error: " + message + "\n\n" + USAGE);
            System.exit(2);
        }
    }
}
