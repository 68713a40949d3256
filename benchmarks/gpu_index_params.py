# Parameters (the device check: the index notebook's GPU cells, the 124M preset shrunk to seconds, offline)
import sys, tempfile
sys.path.insert(0, str(Path.cwd().parents[1] / "benchmarks")) # the notebook runs in nbs/<scratch>/
from offline_inputs import offline_inputs
inputs = offline_inputs()
gpu_root = Path(tempfile.mkdtemp(prefix="gpu_check_index_"))
fineweb_source = inputs["corpus"]
shard_size = 2**15
hellaswag_url = inputs["hellaswag_url"]
weights = inputs["weights"]
gpu_kw = dict(B=16, T=1024, total_batch_size=65536, max_steps=10, warmup_steps=3, val_interval=5, val_loss_steps=2,
              hellaswag_interval=5, sample_interval=5)
