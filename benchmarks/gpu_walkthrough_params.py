# Parameters (the device check: the walkthrough's GPU cells with the real 124M model, shrunk to minutes, offline)
# Used as `python tools/rehearse.py nbs/04_gpu_walkthrough.ipynb benchmarks/gpu_walkthrough_params.py --cell-timeout 0`
# on a GPU machine with no network: the bundled plays stand in for FineWeb-Edu, a randomly initialised GPT-2 (124M)
# saved on the spot for OpenAI's weights, and a HellaSwag file in the real format served on localhost.
import functools, http.server, threading
from transformers import GPT2Config, GPT2LMHeadModel

check_dir = Path(tempfile.mkdtemp(prefix="gpu_check_inputs_"))
with open(check_dir / "plays.jsonl", "w") as f:
    for d in data.shakespeare_docs(): f.write(json.dumps({"text": d["text"]}) + "\n")
rng = random.Random(0)
lines = [l.strip() for d in data.shakespeare_docs() for l in d["text"].splitlines() if 20 < len(l.strip()) < 80]
with open(check_dir / "hellaswag_val.jsonl", "w") as f:
    for i in range(256):
        j = rng.randrange(len(lines) - 1)
        f.write(json.dumps({"ind": i, "ctx": lines[j], "endings": [lines[j + 1]] + rng.sample(lines, 3), "label": 0,
                            "split": "val", "activity_label": "Shakespeare", "source_id": f"check~{i}"}) + "\n")
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
    type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=str(check_dir)))
threading.Thread(target=server.serve_forever, daemon=True).start()
torch.manual_seed(0)
GPT2LMHeadModel(GPT2Config()).save_pretrained(check_dir / "gpt2-random")

run_dir = Path(tempfile.mkdtemp(prefix="gpu_check_run_"))
preset = "gpt2_124m"
train_kw = dict(B=16, total_batch_size=65536, max_steps=30, warmup_steps=10, val_interval=10, val_loss_steps=5,
                hellaswag_interval=10, sample_interval=10, checkpoint_interval=10)
trial_steps = 20
fineweb_source = check_dir / "plays.jsonl"
shard_size = 2**15
hellaswag_url = f"http://127.0.0.1:{server.server_address[1]}/hellaswag_val.jsonl"
weights = str(check_dir / "gpt2-random")
n_gpus = max(torch.cuda.device_count(), 1)
device = "cuda"
