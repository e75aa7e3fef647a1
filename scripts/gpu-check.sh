#!/usr/bin/env bash
# The GPU check of the README: run on a machine with an NVIDIA GPU, from the repository root, with a
# binary built elsewhere (that machine needs no Rust toolchain and no network):
#
#   cargo build --release --features cuda,wgpu && strip -o langevin-gpu target/release/langevin
#   # copy the repository (or just configs/, scripts/ and langevin-gpu) to the GPU machine, then:
#   bash scripts/gpu-check.sh ./langevin-gpu [EPOCHS]
#
# It writes a full-size synthetic mc_maze, preprocesses the 20 ms val split, trains the published
# model (configs/maze.toml) for EPOCHS (default 50) epochs on cuda, wgpu and the CPU with the same seed,
# and prints per-backend wall time, seconds per optimizer step, peak GPU memory and the last epoch's
# losses, so the backends' losses can be compared (they agree to float tolerance, not bit for bit).
# What it needs there: an NVIDIA driver; for cuda, the CUDA runtime compiler NVRTC
# (libnvrtc.so, CUDA 12) on the loader path; for wgpu, a Vulkan driver (libvulkan.so.1 and the
# NVIDIA ICD). A missing one is reported by the backend that needs it; the others still run.
set -uo pipefail
BIN="${1:?usage: gpu-check.sh PATH_TO_LANGEVIN [EPOCHS]}"
EPOCHS="${2:-50}"
WORK="${GPU_CHECK_DIR:-$(mktemp -d)}"
export DATA_HOME="$WORK/data" PREP_HOME="$WORK/prep" RUNS_HOME="$WORK/runs"
echo "work dir: $WORK"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not found"
ldconfig -p | grep -E "libnvrtc|libvulkan" || echo "neither libnvrtc nor libvulkan on the loader path"

"$BIN" synth --dataset mc_maze --scale full --out "$DATA_HOME" >/dev/null || exit 1
"$BIN" preprocess --dataset mc_maze --bin-width 20 --phase val >/dev/null || exit 1

for backend in cuda wgpu flex; do
  MEM="$WORK/mem-$backend.csv"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$MEM" 2>/dev/null &
  SMI=$!
  START=$(date +%s.%N)
  "$BIN" train --config configs/maze.toml --backend "$backend" --run-tag "gpu-$backend" \
    --set train.epochs="$EPOCHS" --set train.eval_every=0 --set train.plot_every=0 \
    >"$WORK/train-$backend.log" 2>&1
  RC=$?
  END=$(date +%s.%N)
  kill "$SMI" 2>/dev/null
  PEAK=$(sort -n "$MEM" 2>/dev/null | tail -1)
  CSV="$RUNS_HOME/gpu-$backend/mc_maze-20ms-val/metrics.csv"
  echo "== $backend: exit $RC, $(echo "$END - $START" | bc) s for $EPOCHS epochs, peak GPU memory ${PEAK:-?} MiB"
  if [ "$RC" -ne 0 ]; then tail -5 "$WORK/train-$backend.log"; continue; fi
  # seconds column / optimizer steps per epoch (1,721 training trials / batch 256 = 7 steps)
  awk -F, 'NR==1{for(i=1;i<=NF;i++)h[$i]=i} END{printf "   last epoch: train_loss %s valid_nll %s, %.3f s/step\n", $h["train_loss"], $h["valid_nll"], $h["seconds"]/7}' "$CSV"
done
