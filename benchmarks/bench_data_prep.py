"""Tokenization throughput: the parallel preparation path vs a one-process per-document loop.

Not a test. Builds a ~30 MB corpus from the bundled plays (split into ~4 KB documents, roughly FineWeb-Edu's
typical size, and replicated), then measures on the same documents:

- baseline: `[tokenize(d) for d in docs]`, one process, one document at a time;
- `tokenize_batch(docs)`: one process, tiktoken's threaded batch encoder (8 threads);
- `iter_tokens(docs, num_proc=N)`: the `fork` Pool used by `write_shards` / `edu_fineweb10B_prep`;
- `write_shards(docs, num_proc=N)`: the whole preparation (Pool + shard files + manifest) into a temp dir.

Usage: python benchmarks/bench_data_prep.py [--mb 30] [--num-proc 2] [--repeats 2]
"""
import argparse, os, platform, statistics, tempfile, time

from buildNanoGPT.data import get_tokenizer, shakespeare_docs, tokenize, tokenize_batch
from buildNanoGPT.prep import iter_tokens, write_shards


def make_docs(mb: float, doc_chars: int = 4000) -> list[dict]:
    "Split the plays into ~doc_chars documents at line breaks; replicate until about `mb` MB of text."
    pieces = []
    for play in shakespeare_docs():
        text, start = play["text"], 0
        while start < len(text):
            end = text.find("\n", start + doc_chars)
            end = len(text) if end == -1 else end + 1
            pieces.append({"text": text[start:end]})
            start = end
    size = sum(len(p["text"]) for p in pieces)
    reps = max(1, round(mb * 1e6 / size))
    return pieces * reps


def timed(fn):
    t0 = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=30)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    get_tokenizer()  # build once, outside the timings
    plays = shakespeare_docs()
    corpus_tokens = sum(len(tokenize(d)) for d in plays)
    print(f"bundled corpus: {len(plays)} docs, {sum(len(d['text']) for d in plays):,} chars, {corpus_tokens:,} tokens")
    docs = make_docs(args.mb)
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"benchmark corpus: {len(docs):,} docs, {mb:.1f} MB")

    paths = {
        "per-doc loop (1 proc)": lambda: sum(len(tokenize(d)) for d in docs),
        "tokenize_batch (8 threads, 1 proc)": lambda: sum(len(t) for t in tokenize_batch(docs)),
        f"Pool ({args.num_proc} procs)": lambda: sum(len(t) for t in iter_tokens(docs, num_proc=args.num_proc)),
    }
    def prep():
        with tempfile.TemporaryDirectory() as d:
            return write_shards(docs, d, "bench", shard_size=int(1e7), num_proc=args.num_proc, progress=False)["tokens"]
    paths[f"write_shards, Pool ({args.num_proc} procs)"] = prep
    times, counts = {name: [] for name in paths}, {}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats):  # interleaved repeats: load from other processes hits every path alike
        for name, fn in paths.items():
            counts[name], s = timed(fn)
            times[name].append(s)
    assert len(set(counts.values())) == 1, f"paths disagree on the token count: {counts}"
    n = counts["per-doc loop (1 proc)"]
    print(f"load average before: {load0:.2f}, after: {os.getloadavg()[0]:.2f}; {args.repeats} interleaved repeats")
    for label, pick in (("median", statistics.median), ("best", min)):
        base_tps = n / pick(times["per-doc loop (1 proc)"])
        print(f"{label}:\n{'path':38s} {'tokens':>12s} {'seconds':>8s} {'tokens/s':>12s} {'vs loop':>8s}")
        for name, ts in times.items():
            s = pick(ts)
            print(f"{name:38s} {n:12,d} {s:8.2f} {n / s:12,.0f} {n / s / base_tps:7.2f}x")


if __name__ == "__main__":
    main()
