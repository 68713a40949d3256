"""Training and encoding speed of `tokenizer.train_tokenizer`, against GPT-2's tokenizer through tiktoken.

Not a test. On the 37 bundled plays (`data.shakespeare_docs()`, 4.9 MB), for each vocabulary size:

- training: wall time of `train_tokenizer(plays, vocab_size)` (Hugging Face's trainer uses every core),
  `--train-reps` times; the ranks must come out the same each time;
- encoding: `enc.encode_ordinary(text)` over every play, one thread, for the trained tokenizer and for GPT-2's
  (`data.get_tokenizer()`), in one process, side by side play by play (who goes first alternates) so that both see
  the same machine load; MB/s and tokens/s of each side's best round, and the speed ratio to GPT-2 as the median of
  the rounds' ratios (each round's two sides ran at the same time, under the same load);
- bytes per token on the plays, and whether tiktoken's ids equal Hugging Face's own encoding of the same text
  (the plays, and the package's source files, text the tokenizer never saw).

Usage: python benchmarks/bench_tokenizer.py [--sizes 512 1024 2048 4096 8192] [--train-reps 3] [--enc-reps 7]
"""
import argparse, datetime, os, platform, statistics, time
from pathlib import Path

import tiktoken, tokenizers

import buildNanoGPT
from buildNanoGPT.data import get_tokenizer, shakespeare_docs
from buildNanoGPT.tokenizer import _BYTE_OF, _hf_bpe, tokenizer_sha256, train_tokenizer


def encode_round(encs, texts, r) -> list[tuple[float, int]]:
    "Encode every text with each of `encs`, side by side play by play (who goes first alternates): [(seconds, tokens)]."
    secs, toks = [0.0] * len(encs), [0] * len(encs)
    for i, text in enumerate(texts):
        order = range(len(encs)) if (r + i) % 2 == 0 else reversed(range(len(encs)))
        for k in order:
            t0 = time.perf_counter()
            toks[k] += len(encs[k].encode_ordinary(text))
            secs[k] += time.perf_counter() - t0
    return list(zip(secs, toks))


def agreement(enc, hf, texts) -> str:
    "On how many of `texts` tiktoken's ids (`enc`) equal those of Hugging Face's encoder `hf` from the same training."
    rank_of = {i: enc.encode_single_token(bytes(_BYTE_OF[c] for c in s)) for s, i in hf.get_vocab().items()}
    return f"{sum(enc.encode_ordinary(t) == [rank_of[i] for i in hf.encode(t).ids] for t in texts)}/{len(texts)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--train-reps", type=int, default=3)
    ap.add_argument("--enc-reps", type=int, default=7)
    args = ap.parse_args()
    plays = shakespeare_docs()
    plays_texts = [d["text"] for d in plays]
    nbytes = sum(len(t.encode()) for t in plays_texts)
    source = [p.read_text(encoding="utf-8") for p in sorted(Path(buildNanoGPT.__file__).parent.glob("*.py"))]
    gpt2 = get_tokenizer()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}; "
          f"tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}; {datetime.date.today()}")
    print(f"corpus: {len(plays)} plays, {nbytes / 1e6:.2f} MB; source check: {len(source)} files of buildNanoGPT")
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")

    rows, gpt2_times = [], []
    for v in args.sizes:
        train_s, hashes = [], set()
        for _ in range(args.train_reps):
            t0 = time.perf_counter()
            enc = train_tokenizer(plays, v)
            train_s.append(time.perf_counter() - t0)
            hashes.add(tokenizer_sha256(enc))
        assert len(hashes) == 1, f"vocab {v}: training gave {len(hashes)} different tokenizers"
        ours, theirs = zip(*(encode_round([enc, gpt2], plays_texts, r) for r in range(args.enc_reps)))
        gpt2_times += theirs
        t_ours, n_ours = min(ours)
        t_gpt2, n_gpt2 = min(theirs)
        ratio = statistics.median(g[0] / o[0] for o, g in zip(ours, theirs))  # paired: the same round, the same load
        hf = _hf_bpe(plays_texts, v)  # the same training, kept as Hugging Face's own encoder
        plays_ok, source_ok = agreement(enc, hf, plays_texts), agreement(enc, hf, source)
        rows.append(dict(v=v, train=statistics.median(train_s), train_all=train_s, mbs=nbytes / t_ours / 1e6,
                         toks=n_ours / t_ours, gpt2_mbs=nbytes / t_gpt2 / 1e6, ratio=ratio,
                         bpt=nbytes / n_ours, plays_ok=plays_ok, source_ok=source_ok))
        print(f"  vocab {v}: done", flush=True)
    t_gpt2, n_gpt2 = min(gpt2_times)
    load1 = os.getloadavg()

    print(f"\n| vocab | train s: median (all {args.train_reps}) | encode MB/s | tokens/s | GPT-2 MB/s, same rounds "
          f"| speed / GPT-2's (median of {args.enc_reps} paired rounds) | bytes/token | tiktoken == HF (plays, source) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['v']} | {r['train']:.2f} ({', '.join(f'{t:.2f}' for t in r['train_all'])}) | {r['mbs']:.2f} "
              f"| {r['toks'] / 1e6:.2f}M | {r['gpt2_mbs']:.2f} | {r['ratio']:.2f} | {r['bpt']:.2f} "
              f"| {r['plays_ok']}, {r['source_ok']} |")
    print(f"| GPT-2 (50257) | - | {nbytes / t_gpt2 / 1e6:.2f} | {n_gpt2 / t_gpt2 / 1e6:.2f}M | - | 1.00 "
          f"| {nbytes / n_gpt2:.2f} | - |")
    print(f"\nload average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
