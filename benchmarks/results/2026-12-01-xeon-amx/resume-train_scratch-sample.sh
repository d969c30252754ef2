#!/bin/bash
# As run on 2026-12-01 from /work/main. train_scratch on the shared sample (800/200, seed 42): uninterrupted, then killed (SIGKILL) after epoch 12 and rerun.
set -u
cd /work/main
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=/work/main
PY=/work/main/.venv/bin/python
root=/tmp/exp/resume-demo; rm -rf $root; mkdir -p $root
$PY -c "
from pathlib import Path
from benchmarks.common import sample_layout
print(sample_layout(Path('$root'), 42))"
for ws in full killed; do
  mkdir -p $root/$ws/data
  ln -s $root/kaggle-sample-42/train $root/$ws/data/train
  ln -s $root/kaggle-sample-42/validation $root/$ws/data/validation
  printf 'common:\n  deterministic: true\n' > $root/$ws/params.yaml
done
(cd $root/full && $PY -m stages.train_scratch > log.txt 2>&1)
cd $root/killed
$PY -m stages.train_scratch > log1.txt 2>&1 &
pid=$!
until ls -d .backups/*/epoch-0012 >/dev/null 2>&1; do sleep 1; done
kill -9 $pid; wait $pid 2>/dev/null
echo "killed after: $(ls .backups/*/)"
$PY -m stages.train_scratch > log2.txt 2>&1
grep -i "resum" log2.txt | head -3
for ws in full killed; do
  echo "$ws: $($PY -c "
import json; m=json.load(open('$root/$ws/reports/scratch/metrics.json'))
print({k: m.get(k) for k in ('resumed_from_epoch','epochs_run','best_epoch','best_val_accuracy','best_val_loss','final_val_accuracy')})")"
done
echo "history rows (killed run): $(($(wc -l < $root/killed/reports/scratch/history.csv) - 1)), epochs: $(cut -d, -f1 $root/killed/reports/scratch/history.csv | tail -n +2 | tr '\n' ' ')"
