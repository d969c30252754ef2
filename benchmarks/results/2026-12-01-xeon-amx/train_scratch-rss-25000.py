"""Peak RSS of the whole train_scratch stage function (1 epoch, uint8 memory cache) at Kaggle's 25,000 photos (generated, 150x150)."""
import json, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from benchmarks.common import run_child, split_layout, machine

root = Path("/tmp/exp/rss25k"); root.mkdir(parents=True, exist_ok=True)
started = time.time()
data = split_layout(root, 10_000, 2_500, 150, 42)
print("generated in", round(time.time() - started), "s", flush=True)
settings = {"data": str(data), "image_size": 150, "batch_size": 32, "seed": 42, "epochs": 1,
            "mixed_precision": False, "cache": "memory"}
result = run_child("train_stage", settings, 3600)
print(json.dumps({"machine_flags": machine()["cpu_flags"], **result}))
