#!/usr/bin/env python3
"""Share of CPU time by activity, from folded perf stacks.

Input: folded stacks (one `frame;frame;...;leaf COUNT` per line), as
`perf script | inferno-collapse-perf` writes them; scripts/flamegraph.sh
keeps them in target/flamegraph/kuniq-count-PARSER-dwarf.folded, and
scripts/profile-kafka.sh in target/flamegraph/kuniq-kafka.folded.

Each sample goes to one group:
1. walking from the leaf towards the root, up to the first kernel entry,
   the first frame that matches decides:
   - hashing:  twox_hash (XXH3, the uid hash; ahash before), hashbrown (the per-window u64 sets),
               kuniq::count (UidSet);
   - scanning: kuniq::frame::* (the scan parser, its SIMD lexing and
               grammar passes, number and string checks);
   - window:   kuniq::window (watermarks, window engine, late frames);
2. kafka: its thread is a librdkafka thread (`rdk:...`), or a frame is
   rdkafka / librdkafka code or kuniq's Kafka glue (kuniq::kafka), kernel
   time under them included (socket copies, polls);
3. kernel: other time in the kernel (page faults and munmap of the mapped
   input, futex waits, writes to stdout);
4. rest: anything else (pipeline loop and channels, allocator, libc, start-up).

Inlined functions are frames of their own only when perf script's inline
lines are put in stack order first (scripts/flamegraph.sh and
scripts/profile-kafka.sh do that, their inline_order step).

Usage: scripts/time-shares.py FOLDED [FOLDED...]   (or stdin)
"""
import collections
import re
import sys

KAFKA = re.compile(r"rdkafka|rd_kafka|librdkafka|kuniq::kafka::")
HASHING = re.compile(r"twox_hash|XxHash3|ahash|AHasher|hashbrown|RawTable|find_or_find_insert_slot|find_insert_slot|"
                     r"prepare_insert_slot|insert_in_slot|reserve_rehash|kuniq::count::")
PIPELINE_WRAPPERS = ("next_chunk_gated", "worker_loop", "parse_chunk")
KERNEL_ENTRY = re.compile(r"^(entry_SYSCALL|asm_exc_|asm_sysvec_|asm_common_interrupt|"
                          r"exc_page_fault|do_syscall_64|ret_from_fork)")


def classify(frames):
    # 1. From the leaf up to the first kernel entry: kuniq's own work.
    in_kernel = False
    for f in reversed(frames):
        if KERNEL_ENTRY.search(f):
            in_kernel = True
            break
        if HASHING.search(f):
            return "hashing"
        if "kuniq::frame::" in f and not f.startswith(PIPELINE_WRAPPERS):
            return "scanning"
        if "kuniq::window::" in f:
            return "window"
    # 2. librdkafka's threads, or called from rdkafka / kuniq's Kafka glue
    #    (syscalls included: socket reads, polls, futex waits of the client).
    if frames[0].startswith("rdk:") or any(KAFKA.search(f) for f in frames):
        return "kafka"
    # 3. Other kernel time: page faults and munmap of the mapped input,
    #    futex waits between threads, writes to stdout.
    if in_kernel:
        return "kernel"
    return "rest"


def main():
    totals = collections.Counter()
    threads = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    files = sys.argv[1:] or ["-"]
    for path in files:
        fh = sys.stdin if path == "-" else open(path)
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, n = line.rpartition(" ")
            n = int(n)
            frames = stack.split(";")
            g = classify(frames)
            totals[g] += n
            threads[re.sub(r"\d+$", "N", frames[0])] += n
            leaves[g][frames[-1][:70]] += n
    total = sum(totals.values())
    print(f"total: {total / 1e6:.0f} ms of CPU time (cpu-clock periods), {len(files)} file(s)")
    order = ["scanning", "hashing", "kafka", "kernel", "window", "rest"]
    for g in order:
        print(f"{g:9} {100 * totals[g] / total:6.1f} %   {totals[g] / 1e6:8.0f} ms")
    print("rest = kernel + window + rest: "
          f"{100 * (totals['kernel'] + totals['window'] + totals['rest']) / total:.1f} %")
    print("\nby thread:")
    for t, n in threads.most_common(8):
        print(f"  {100 * n / total:6.1f} %  {t}")
    print("\ntop leaf functions per group:")
    for g in order:
        top = ", ".join(f"{leaf} {100 * n / total:.1f}%" for leaf, n in leaves[g].most_common(4))
        print(f"  {g}: {top}")


if __name__ == "__main__":
    main()
