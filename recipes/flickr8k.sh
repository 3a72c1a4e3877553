#!/usr/bin/env bash
# One Flickr8k recipe, end to end: prepare -> features -> training -> eval, into one run folder.
#
#   recipes/flickr8k.sh --root DATASET_ROOT --run RUN_DIR --encoder-weights MOBILENET_DIR \
#                       [--recipe shipped|paper|ensemble] [--seed 42] [--seeds 42,7,3,11] [--split dev|test]
#                       [--precision auto|fp32|bf16] [--consensus 60] [--layer Conv_1_tap12]
#
# DATASET_ROOT is the official Flickr8k layout (Flicker8k_Dataset/ and Flickr8k_text/); MOBILENET_DIR holds the
# ImageNet MobileNetV2 tensors (.npy) or its .tflite/.tgz. Each stage is skipped when its output is already in
# RUN_DIR, so a stopped recipe is rerun with the same command. The features are MobileNetV2's --layer (default
# Conv_1_tap12: Conv_1 with block 12's finer map folded in, 7x7x1664; Conv_1 is the plain 7x7x1280 map the paper
# recipe was measured on). Recipes (docs/training.md has their scores):
#   shipped   5 epochs of cross-entropy, then 2 of self-critical training with 10 samples per image; with
#             --seed 7, the model in models/
#   paper     the same 5 epochs, then 3 of self-critical training with 5 samples per image, the weights of its
#             best and last epochs averaged (sat average): the paper's BLEU-4 (with --layer Conv_1), shipped first
#   ensemble  the shipped recipe once per seed of --seeds (default 42,7,3,11), in RUN_DIR/seed-S/, scored as one
#             ensemble (beam search over the models' averaged log-probabilities)
# The eval runs twice: beam 3 alone, then reranked by consensus with the captions of the --consensus K nearest
# training images (default 60; 0: skip it).
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
root= run= weights= recipe=shipped seed=42 seeds=42,7,3,11 split=dev precision=auto consensus=60 layer=Conv_1_tap12
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2;;
    --run) run=$2; shift 2;;
    --encoder-weights) weights=$2; shift 2;;
    --recipe) recipe=$2; shift 2;;
    --seed) seed=$2; shift 2;;
    --seeds) seeds=$2; shift 2;;
    --split) split=$2; shift 2;;
    --precision) precision=$2; shift 2;;
    --consensus) consensus=$2; shift 2;;
    --layer) layer=$2; shift 2;;
    -h|--help) usage 0;;
    *) echo "recipes/flickr8k.sh: unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
[ -n "$root" ] && [ -n "$run" ] && [ -n "$weights" ] || { echo "recipes/flickr8k.sh: --root, --run and --encoder-weights are required" >&2; usage 2; }
[ -d "$root/Flickr8k_text" ] || { echo "recipes/flickr8k.sh: $root has no Flickr8k_text/ folder: pass the Flickr8k root" >&2; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
sat() { node "$here/dist/src/cli.js" "$@"; }
[ -f "$here/dist/src/cli.js" ] || { echo "recipes/flickr8k.sh: build first: npm run build (in $here)" >&2; exit 2; }

step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

if [ ! -f "$run/run.json" ]; then
  step prepare
  sat prepare --dataset flickr8k --root "$root" --out "$run" --top-k 2540
fi
step features   # resumes: images already in the store are skipped
sat features --run "$run" --encoder mobilenet_v2 --encoder-weights "$weights" --layer "$layer"

# cross_entropy DIR SEED: the cross-entropy stage every recipe starts from, 5 epochs, into DIR/ck-xe.
cross_entropy() {
  local xe="$1/ck-xe"
  if [ ! -f "$xe/done" ]; then
    step "cross-entropy, 5 epochs, seed $2"
    resume=(); [ -f "$xe/latest.safetensors" ] && resume=(--resume)
    sat train --run "$run" --checkpoints "$xe" --epochs 5 --seed "$2" --precision "$precision" "${resume[@]}"
    touch "$xe/done"
  fi
}

# self_critical DIR SEED FOLDER EPOCHS SAMPLES: self-critical training from DIR/ck-xe into DIR/FOLDER.
self_critical() {
  local out="$1/$3"
  if [ ! -f "$out/done" ]; then
    step "self-critical, $4 epochs, $5 samples per image, seed $2"
    if [ -f "$out/latest.safetensors" ]; then
      sat train --run "$run" --checkpoints "$out" --resume
    else
      sat train --run "$run" --checkpoints "$out" --init "$1/ck-xe/latest.safetensors" \
        --config "$here/configs/scst.json" --epochs "$4" --scst-samples "$5" --seed "$2" --precision "$precision"
    fi
    touch "$out/done"
  fi
}

case "$recipe" in
  shipped)
    cross_entropy "$run" "$seed"
    self_critical "$run" "$seed" ck-scst10 2 10
    final="$run/ck-scst10"
    ;;
  paper)
    cross_entropy "$run" "$seed"
    self_critical "$run" "$seed" ck-scst 3 5
    final="$run/ck-avg"
    if [ ! -f "$final/best.safetensors" ]; then
      step "average the self-critical run's best and last epochs"
      sat average --out "$final" "$run/ck-scst/best.safetensors" "$run/ck-scst/latest.safetensors"
    fi
    ;;
  ensemble)
    members=()
    for s in ${seeds//,/ }; do
      mkdir -p "$run/seed-$s"
      cross_entropy "$run/seed-$s" "$s"
      self_critical "$run/seed-$s" "$s" ck-scst10 2 10
      members+=("$run/seed-$s/ck-scst10/best.safetensors")
    done
    final=$(IFS=,; echo "${members[*]}")
    ;;
  *) echo "recipes/flickr8k.sh: unknown recipe $recipe (known: shipped, paper, ensemble)" >&2; exit 2;;
esac

step "eval on $split, beam 3"
sat eval --run "$run" --split "$split" --checkpoint "$final" --beam 3 --alpha 0.5
if [ "$consensus" != 0 ]; then
  step "eval on $split, beam 3, reranked by consensus with $consensus neighbours"
  sat eval --run "$run" --split "$split" --checkpoint "$final" --beam 3 --alpha 0.5 --consensus "$consensus"
fi
