#!/bin/bash
# As run on 2026-12-01 from /work/main; the kaggle-medium split is the one `python -m benchmarks.recipes --train medium --seeds 42` leaves in /tmp/catsdogs-recipes/medium-42.
# Peak RSS of train_scratch (1 epoch) on the kaggle-medium split (3,200/800), float32 cache (before) vs uint8 (after), one after the other.
set -u
cd /work/main
export TF_CPP_MIN_LOG_LEVEL=2
grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16\|fma' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
for rev in fb5b31f^ HEAD; do
  tag=$(git rev-parse --short "$rev")
  rm -rf /tmp/rss-$tag /tmp/rss-ws-$tag
  git worktree add -q --detach /tmp/rss-$tag "$rev"
  mkdir -p /tmp/rss-ws-$tag/data
  ln -s /tmp/catsdogs-recipes/medium-42/data/train /tmp/rss-ws-$tag/data/train
  ln -s /tmp/catsdogs-recipes/medium-42/data/validation /tmp/rss-ws-$tag/data/validation
  printf 'train_scratch:\n  epochs: 1\n' > /tmp/rss-ws-$tag/params.yaml
  (cd /tmp/rss-ws-$tag && PYTHONPATH=/tmp/rss-$tag /usr/bin/time -v /work/main/.venv/bin/python -m stages.train_scratch > log.txt 2>&1)
  echo "$rev ($tag): $(grep -E 'Maximum resident|Elapsed' /tmp/rss-ws-$tag/log.txt | tr -s ' ' | tr '\n' ';')"
  git worktree remove --force /tmp/rss-$tag
done
