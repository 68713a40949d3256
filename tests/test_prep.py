"""buildnanogpt-prep end to end, as a user types it: sources are paths (checked, walked, read as UTF-8), your own
corpus gets val + train shards named after it, another corpus in the same folder is refused, errors are one line
with exit code 2 (--debug: the traceback), --help gives every default."""
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from limits import HANG_S

PREP = [sys.executable, "-c", "from buildNanoGPT.cli import prep_cli; prep_cli()"]
WORDS = "the a cat dog sat on mat and ran far away over hill while sun went down".split()


def _env(**kw):
    env = {k: v for k, v in os.environ.items() if k != "BUILDNANOGPT_DEBUG"}
    return env | {"OMP_NUM_THREADS": "1"} | kw


def prep(*args, cwd, **env):
    return subprocess.run(PREP + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=HANG_S,
                          env=_env(**env))


def _text(n_words, seed):
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))


def _tokens(text):
    from buildNanoGPT.data import tokenize
    return tokenize({"text": text})


def _stream(d):
    files = sorted(Path(d).glob("*.npy"), key=lambda p: p.stem[-6:])
    return np.concatenate([np.load(f) for f in files])


def _user_error(r, *parts):
    "One line on stderr, `buildnanogpt-prep: error: ...` containing `parts`, exit code 2, no traceback."
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("buildnanogpt-prep: error: "), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for p in parts: assert p in last, (p, last)
    return last


def test_missing_path_is_an_error(tmp_path):
    (tmp_path / "my.txt").write_text(_text(100, 0))
    r = prep("--source", "my.txt", "missing.txt", "--data-dir", "out", cwd=tmp_path)
    _user_error(r, "source 'missing.txt' does not exist")
    r = prep("--fineweb", "--source", "missing.txt", "--data-dir", "fw", "--num-proc", "1", cwd=tmp_path)
    _user_error(r, "source 'missing.txt' does not exist")
    assert not (tmp_path / "fw").exists() and not list((tmp_path / "out").glob("*.npy"))  # nothing was written


def test_unknown_extension_and_empty_folder(tmp_path):
    (tmp_path / "tokens.bin").write_bytes(b"\x00\x01\x02")
    r = prep("--fineweb", "--source", "tokens.bin", "--data-dir", "fw", cwd=tmp_path)
    _user_error(r, "don't know how to read tokens.bin", ".txt/.jsonl/.json/.parquet")
    (tmp_path / "some_folder").mkdir()
    r = prep("--fineweb", "--source", "some_folder", "--data-dir", "fw", cwd=tmp_path)
    _user_error(r, "folder some_folder holds no .txt/.jsonl/.json/.parquet")


def test_folder_is_walked_sorted(tmp_path):
    src = tmp_path / "texts"
    (src / "sub").mkdir(parents=True)
    a, b, c = _text(3000, 1), _text(3000, 2), _text(3000, 3)
    (src / "b.txt").write_text(b)
    (src / "a.txt").write_text(a)
    with gzip.open(src / "sub" / "c.jsonl.gz", "wt") as f: f.write(json.dumps({"text": c}) + "\n")
    (src / "notes.md").write_text("not a document")
    r = prep("--source", "texts", "--data-dir", "data/mine", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "skipping 1 file(s) in texts" in r.stderr and "notes.md" in r.stderr
    out = tmp_path / "data" / "mine"
    np.testing.assert_array_equal(_stream(out), np.concatenate([_tokens(t) for t in (a, b, c)]))
    m = json.loads((out / "manifest.json").read_text())
    assert [Path(f["path"]).name for f in m["sources"]["files"]] == ["a.txt", "b.txt", "c.jsonl.gz"]
    assert all(f["size"] == Path(f["path"]).stat().st_size for f in m["sources"]["files"])


def test_latin1_file_names_file_and_offset_and_replace_works(tmp_path):
    head = _text(3000, 3)
    (tmp_path / "latin1.txt").write_bytes((head + " caf\u00e9 " + _text(3000, 4)).encode("latin-1"))
    r = prep("--source", "latin1.txt", "--data-dir", "lat", cwd=tmp_path)
    _user_error(r, f"latin1.txt is not UTF-8: byte 0xe9 at byte offset {len(head) + 4}", "--replace-bad-bytes")
    r = prep("--source", "latin1.txt", "--data-dir", "lat", "--replace-bad-bytes", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    want = _tokens(head + " caf\ufffd " + _text(3000, 4))
    np.testing.assert_array_equal(_stream(tmp_path / "lat"), want)


def test_list_of_path_strings_reads_the_files(tmp_path):
    "The old bug: `--fineweb --source my.txt other.txt` tokenized the two path strings; now it reads both files."
    a, b = _text(2000, 5), _text(2000, 6)
    (tmp_path / "my.txt").write_text(a)
    (tmp_path / "other.txt").write_text(b)
    r = prep("--fineweb", "--source", "my.txt", "other.txt", "--data-dir", "fw", "--shard-size", "1000",
             "--num-proc", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(_stream(tmp_path / "fw"), np.concatenate([_tokens(a), _tokens(b)]))
    assert (tmp_path / "fw" / "edufineweb_val_000000.npy").exists()  # FineWeb's layout: shard 0 is val
    sizes = [len(np.load(p)) for p in sorted((tmp_path / "fw").glob("*.npy"), key=lambda p: p.stem[-6:])]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and 0 < sizes[-1] <= 1000


def test_own_small_corpus_gives_val_and_train_shards_the_loader_reads(tmp_path):
    text = _text(20000, 7)
    (tmp_path / "my_corpus.txt").write_text(text)
    r = prep("--source", "my_corpus.txt", "--shard-size", "5000", cwd=tmp_path)  # no --fineweb, no --data-dir
    assert r.returncode == 0, r.stderr
    out = tmp_path / "data" / "my_corpus"
    n = len(_tokens(text))
    val = max(-(-n * 5 // 100), 2049)  # ceil(5%), at least one batch of B=16, T=128 (+1)
    sizes = [val] + [5000] * ((n - val) // 5000)
    rest = (n - val) % 5000
    if rest >= 2049: sizes.append(rest)
    else: sizes[-1] += rest
    names = sorted(p.name for p in out.glob("*.npy"))
    assert names[-1] == "my_corpus_val_000000.npy" and names[0] == "my_corpus_train_000001.npy"
    assert len(names) == len(sizes) >= 3
    got = [len(np.load(out / f"my_corpus_{'val' if i == 0 else 'train'}_{i:06d}.npy")) for i in range(len(sizes))]
    assert got == sizes
    assert f"my_corpus: 1 docs, {n:,} tokens, {len(sizes)} shards (1 val of {val:,} tokens, {len(sizes) - 1} train of " \
           f"{n - val:,} tokens) in data/my_corpus" in r.stdout
    assert "split: val = " in r.stdout and "val_fraction=0.05, min_split_tokens=2049" in r.stdout
    code = ("from buildNanoGPT.data import DataLoaderLite as D; t = D(B=16, T=128, data_root='data/my_corpus'); "
            "v = D(B=16, T=128, split='val', data_root='data/my_corpus'); x, y = v.next_batch(); print(tuple(x.shape))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S, env=_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["found", str(len(sizes) - 1), "shards", "for", "split", "train",
                                "found", "1", "shards", "for", "split", "val", "(16,", "128)"]


def test_too_small_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "tiny.txt").write_text("Far too short to train on.")
    r = prep("--source", "tiny.txt", "--data-dir", "tiny", cwd=tmp_path)
    _user_error(r, "too few for a val split and a train split of at least 2,049 tokens")
    assert not (tmp_path / "tiny").exists()  # a failed run leaves no empty folder behind
    r = prep("--source", "tiny.txt", "--data-dir", "tiny", "--min-split-tokens", "3", cwd=tmp_path)
    assert r.returncode == 0 and "(1 val of 3 tokens, 1 train of" in r.stdout, r.stderr


def test_other_corpus_refused_then_overwrite(tmp_path):
    a, b = _text(6000, 8), _text(6000, 9)
    (tmp_path / "a.txt").write_text(a)
    (tmp_path / "b.txt").write_text(b)
    assert prep("--source", "a.txt", "--data-dir", "d", cwd=tmp_path).returncode == 0
    (tmp_path / "d" / "keep.txt").write_text("a file of the user's")
    r = prep("--source", "b.txt", "--data-dir", "d", cwd=tmp_path)
    _user_error(r, "d already holds another corpus", "--overwrite")
    np.testing.assert_array_equal(_stream(tmp_path / "d"), _tokens(a))  # untouched
    for extra in (["--name", "other"], ["--shard-size", "9000"], ["--val-fraction", "0.1"]):
        _user_error(prep("--source", "a.txt", "--data-dir", "d", *extra, cwd=tmp_path), "already holds another corpus")
    r = prep("--fineweb", "--source", "b.txt", "--data-dir", "d", "--name", "d", cwd=tmp_path)
    _user_error(r, "already holds another corpus")
    r = prep("--source", "b.txt", "--data-dir", "d", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(_stream(tmp_path / "d"), _tokens(b))
    assert (tmp_path / "d" / "keep.txt").read_text() == "a file of the user's"  # only our files were removed


def test_same_corpus_rerun_is_a_noop(tmp_path):
    (tmp_path / "a.txt").write_text(_text(6000, 10))
    r1 = prep("--source", "a.txt", "--data-dir", "d", cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr
    files = lambda: (p for p in (tmp_path / "d").iterdir() if p.name != ".lock") # the lock names its last holder
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files()}
    r2 = prep("--source", "a.txt", "--data-dir", "d", cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files()} == before
    assert r2.stdout == r1.stdout
    # changing the file (size/mtime recorded in the manifest) makes it another corpus
    (tmp_path / "a.txt").write_text(_text(6001, 10))
    _user_error(prep("--source", "a.txt", "--data-dir", "d", cwd=tmp_path), "already holds another corpus", "a.txt")


def test_error_format_debug_traceback_and_flag_errors(tmp_path):
    r = prep("--source", "missing.txt", cwd=tmp_path)
    assert r.stderr == "buildnanogpt-prep: error: source 'missing.txt' does not exist\n" and r.stdout == ""
    for debug in (["--debug"], []):
        r = prep("--source", "missing.txt", *debug, cwd=tmp_path, **({} if debug else {"BUILDNANOGPT_DEBUG": "1"}))
        assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1] == "FileNotFoundError: source 'missing.txt' does not exist"
    r = prep("--val-fraction", "0.1", cwd=tmp_path)  # flags that make no sense together: argparse's format
    _user_error(r, "--val-fraction needs --source without --fineweb")
    assert r.stderr.startswith("usage: buildnanogpt-prep")
    _user_error(prep("--source", "x.txt", "--val-fraction", "1.5", cwd=tmp_path), "val_fraction must be between 0 and 1")
    _user_error(prep("--num-proc", "0", cwd=tmp_path), "--num-proc must be >= 1")
    _user_error(prep("--bogus", cwd=tmp_path), "unrecognized arguments: --bogus")


def test_help_shows_every_default(tmp_path):
    r = prep("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    opts = re.split(r"\n  (?=-)", r.stdout.split("options:")[1].split("examples:")[0])[1:]
    names = [o.split()[0].rstrip(",") for o in opts]
    assert set(names) >= {"-h", "--source", "--data-dir", "--name", "--val-fraction", "--min-split-tokens",
                          "--shard-size", "--fineweb", "--remote-name", "--num-proc", "--replace-bad-bytes",
                          "--overwrite", "--hellaswag", "--hellaswag-dir", "--debug"}, names
    for name, o in zip(names, opts):
        if name != "-h": assert "(default:" in " ".join(o.split()), o


def test_sources_are_a_set(tmp_path):
    "A file named twice (itself twice, or a folder and a file in it) is tokenized once: val text never trains."
    src = tmp_path / "src"; src.mkdir()
    (src / "hamlet.txt").write_text(_text(6000, 1)); (src / "lear.txt").write_text(_text(6000, 2))
    once = prep("--source", "src", "--data-dir", "once", "--shard-size", "4000", cwd=tmp_path)
    assert once.returncode == 0, once.stderr
    for i, (args, dropped) in enumerate(((["src", "src/hamlet.txt"], "src/hamlet.txt"),
                                         (["src/lear.txt", "src/lear.txt"], "src/lear.txt"))):
        out = tmp_path / f"twice{i}"
        r = prep("--source", *args, "--data-dir", out.name, "--shard-size", "4000", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert f"note: 1 source file(s) named more than once, read once: {dropped}" in r.stderr, r.stderr
        if args[0] == "src":
            assert np.array_equal(_stream(out), _stream(tmp_path / "once")) # the same shards as naming the folder once
        else:
            assert np.array_equal(_stream(out), _tokens(_text(6000, 2))) # one document, tokenized once


def test_training_reads_only_what_a_complete_manifest_lists(tmp_path):
    "An unfinished prep, or a shard file the manifest does not list, is refused by buildnanogpt-train, in one line."
    (tmp_path / "my.txt").write_text(_text(20000, 3))
    assert prep("--source", "my.txt", "--data-dir", "mine", "--shard-size", "5000", cwd=tmp_path).returncode == 0
    mine = tmp_path / "mine"
    train = [sys.executable, "-c", "from buildNanoGPT.cli import train_cli; train_cli()", "--data-dir", "mine",
             "--model", "cpu_tiny", "-B", "2", "-T", "32", "--total-batch-size", "64", "--max-steps", "1",
             "--no-hellaswag", "--sample-interval", "0", "--device", "cpu", "--log-dir", "log"]
    run = lambda: subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S, env=_env())
    np.save(mine / "other_train_000001.npy", np.zeros(5000, dtype=np.uint16)) # another corpus's shard, dropped in
    r = run()
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert last.startswith("buildnanogpt-train: error: mine holds shard file(s) that its manifest.json does not list "
                           "(other_train_000001.npy)"), last
    (mine / "other_train_000001.npy").unlink()
    m = json.loads((mine / "manifest.json").read_text())
    (mine / "manifest.json").write_text(json.dumps({**m, "complete": False})) # as a killed or disk-full prep leaves it
    r = run()
    assert r.returncode == 2 and "holds an unfinished preparation" in r.stderr.strip().splitlines()[-1], r.stderr
    (mine / "manifest.json").write_text(json.dumps(m))
    assert run().returncode == 0
