# Parameters (the device check: the walkthrough's GPU cells with the real 124M model, shrunk to minutes, offline)
# `python tools/rehearse.py nbs/04_gpu_walkthrough.ipynb benchmarks/gpu_walkthrough_params.py --cell-timeout 0` on a GPU
# machine with no network; the stand-ins for the downloads come from benchmarks/offline_inputs.py.
sys.path.insert(0, str(Path.cwd().parents[1] / "benchmarks")) # the notebook runs in nbs/<scratch>/
from offline_inputs import offline_inputs
inputs = offline_inputs()

run_dir = Path(tempfile.mkdtemp(prefix="gpu_check_run_"))
preset = "gpt2_124m"
train_kw = dict(B=16, total_batch_size=65536, max_steps=30, warmup_steps=10, val_interval=10, val_loss_steps=5,
                hellaswag_interval=10, sample_interval=10, checkpoint_interval=10)
trial_steps = 20
fineweb_source = inputs["corpus"]
shard_size = 2**15
hellaswag_url = inputs["hellaswag_url"]
weights = inputs["weights"]
n_gpus = max(torch.cuda.device_count(), 1)
device = "cuda"
