#!/usr/bin/env bash
# Distils the teacher export into a student, evaluates it on the dev split and exports it.
#
#   TEACHER_MODEL=export/teacher BERT_CONFIG=model/bert_config_student.json bash scripts/distill.sh
#
# The student starts from INIT_CHECKPOINT (a Google checkpoint, a training checkpoint or the
# teacher's export; empty = from scratch), optionally taking the layers in INIT_LAYER_MAP
# (e.g. 0,4,8,11). Extra arguments are passed on to bert/run_classifier_distill.py.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_DIR=${MODEL_DIR:-model}
DATA_DIR=${DATA_DIR:-data/demo}
OUTPUT_DIR=${OUTPUT_DIR:-output/student}
EXPORT_DIR=${EXPORT_DIR:-export/student}
TEACHER_MODEL=${TEACHER_MODEL:-export/teacher}
VOCAB_FILE=${VOCAB_FILE:-$MODEL_DIR/vocab.txt}
BERT_CONFIG=${BERT_CONFIG:-$MODEL_DIR/bert_config_student.json}

exec python bert/run_classifier_distill.py \
  --task_name="${TASK_NAME:-emotion}" \
  --do_train=true \
  --do_eval=true \
  --do_export=true \
  --data_dir="$DATA_DIR" \
  --vocab_file="$VOCAB_FILE" \
  --bert_config_file="$BERT_CONFIG" \
  --init_checkpoint="${INIT_CHECKPOINT:-}" \
  --init_layer_map="${INIT_LAYER_MAP:-}" \
  --max_seq_length="${MAX_SEQ_LENGTH:-128}" \
  --train_batch_size="${TRAIN_BATCH_SIZE:-32}" \
  --learning_rate="${LEARNING_RATE:-5e-5}" \
  --num_train_epochs="${NUM_TRAIN_EPOCHS:-3}" \
  --teacher_model="$TEACHER_MODEL" \
  --teacher_logits="${TEACHER_LOGITS:-online}" \
  --temperature="${TEMPERATURE:-2}" \
  --alpha="${ALPHA:-0.5}" \
  --output_dir="$OUTPUT_DIR" \
  --export_dir="$EXPORT_DIR" \
  "$@"
