#!/usr/bin/env bash
# Fine-tunes the teacher, evaluates it on the dev split and exports it as a SavedModel.
#
#   MODEL_DIR=model/chinese_L-12_H-768_A-12 DATA_DIR=data/waimai bash scripts/train_teacher_model.sh
#
# MODEL_DIR holds Google's vocab.txt, bert_config.json and bert_model.ckpt; VOCAB_FILE,
# BERT_CONFIG and INIT_CHECKPOINT override its files (INIT_CHECKPOINT= trains from scratch).
# Extra arguments are passed on to bert/run_classifier.py and win over the defaults here.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_DIR=${MODEL_DIR:-model/chinese_L-12_H-768_A-12}
DATA_DIR=${DATA_DIR:-data/demo}
OUTPUT_DIR=${OUTPUT_DIR:-output/teacher}
EXPORT_DIR=${EXPORT_DIR:-export/teacher}
VOCAB_FILE=${VOCAB_FILE:-$MODEL_DIR/vocab.txt}
BERT_CONFIG=${BERT_CONFIG:-$MODEL_DIR/bert_config.json}
INIT_CHECKPOINT=${INIT_CHECKPOINT-$MODEL_DIR/bert_model.ckpt}
TEMPERATURE=${TEMPERATURE:-1}
DO_DISTILL=false
if [ "$TEMPERATURE" != "1" ]; then DO_DISTILL=true; fi

exec python bert/run_classifier.py \
  --task_name="${TASK_NAME:-emotion}" \
  --do_train=true \
  --do_eval=true \
  --do_export=true \
  --data_dir="$DATA_DIR" \
  --vocab_file="$VOCAB_FILE" \
  --bert_config_file="$BERT_CONFIG" \
  --init_checkpoint="$INIT_CHECKPOINT" \
  --max_seq_length="${MAX_SEQ_LENGTH:-128}" \
  --train_batch_size="${TRAIN_BATCH_SIZE:-32}" \
  --learning_rate="${LEARNING_RATE:-2e-5}" \
  --num_train_epochs="${NUM_TRAIN_EPOCHS:-3}" \
  --do_distill="$DO_DISTILL" \
  --temperature="$TEMPERATURE" \
  --output_dir="$OUTPUT_DIR" \
  --export_dir="$EXPORT_DIR" \
  "$@"
