"""Local stand-ins for the downloads on a machine with no network (the lent GPU box): the bundled plays as a jsonl
corpus for FineWeb-Edu, a randomly initialised GPT-2 (124M) saved with save_pretrained for OpenAI's weights, and a
HellaSwag file in the real format served over HTTP on localhost (so the real download code runs)."""
import functools, http.server, json, random, tempfile, threading
from pathlib import Path


def offline_inputs(n_hellaswag: int = 256, seed: int = 0) -> dict:
    "Paths and URL of the stand-ins: corpus, weights, hellaswag_url (the server runs in a daemon thread)."
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from buildNanoGPT import data
    d = Path(tempfile.mkdtemp(prefix="offline_inputs_"))
    docs = data.shakespeare_docs()
    with open(d / "plays.jsonl", "w") as f:
        for doc in docs: f.write(json.dumps({"text": doc["text"]}) + "\n")
    rng = random.Random(seed)
    lines = [l.strip() for doc in docs for l in doc["text"].splitlines() if 20 < len(l.strip()) < 80]
    with open(d / "hellaswag_val.jsonl", "w") as f:
        for i in range(n_hellaswag):
            j = rng.randrange(len(lines) - 1)
            f.write(json.dumps({"ind": i, "ctx": lines[j], "endings": [lines[j + 1]] + rng.sample(lines, 3), "label": 0,
                                "split": "val", "activity_label": "Shakespeare", "source_id": f"offline~{i}"}) + "\n")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(d)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(d / "gpt2-random")
    return dict(corpus=d / "plays.jsonl", weights=str(d / "gpt2-random"),
                hellaswag_url=f"http://127.0.0.1:{server.server_address[1]}/hellaswag_val.jsonl")
