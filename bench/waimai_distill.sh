#!/usr/bin/env bash
# The reference blog's experiment on its exact splits (../shared/data/waimai), from scratch on CPU:
# a 4-layer teacher, a 1-layer student trained alone, and the same student distilled from the
# teacher with the same steps and seed. Prints each run's dev metrics.
#
#   bash bench/waimai_distill.sh            # WAIMAI_DIR, WORK_DIR, *_EPOCHS, TEMPERATURE, ALPHA
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

WAIMAI_DIR=${WAIMAI_DIR:-../shared/data/waimai}
WORK=${WORK_DIR:-output/bench/waimai}
if [ ! -f "$WAIMAI_DIR/train.csv" ]; then
  echo "error: $WAIMAI_DIR/train.csv not found (set WAIMAI_DIR)" >&2
  exit 1
fi
rm -rf "$WORK/teacher" "$WORK/student_alone" "$WORK/student_distilled" "$WORK/export"
mkdir -p "$WORK"
python scripts/build_vocab.py --input "$WAIMAI_DIR/train.csv" --output "$WORK/vocab.txt" \
  --min_count 2
python - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
vocab_size = sum(1 for line in open(work + "/vocab.txt", encoding="utf-8") if line.strip())
for source, target in (("model/bert_config.json", "teacher"),
                       ("model/bert_config_student.json", "student")):
  config = json.load(open(source))
  config["vocab_size"] = vocab_size
  json.dump(config, open("%s/%s_config.json" % (work, target), "w"), indent=2)
PY

COMMON=(--task_name=emotion --data_dir="$WAIMAI_DIR" --vocab_file="$WORK/vocab.txt"
        --do_train --do_eval --eval_batch_size=64 --log_every_n_steps=100
        --save_checkpoints_steps=1000 --seed=12345)
START=$SECONDS
python bert/run_classifier.py "${COMMON[@]}" --bert_config_file="$WORK/teacher_config.json" \
  --learning_rate="${TEACHER_LEARNING_RATE:-2e-4}" --num_train_epochs="${TEACHER_EPOCHS:-3}" \
  --output_dir="$WORK/teacher" --do_export --export_dir="$WORK/export/teacher"
echo "teacher: $((SECONDS - START)) s"
START=$SECONDS
python bert/run_classifier.py "${COMMON[@]}" --bert_config_file="$WORK/student_config.json" \
  --learning_rate="${STUDENT_LEARNING_RATE:-5e-4}" --num_train_epochs="${STUDENT_EPOCHS:-3}" \
  --output_dir="$WORK/student_alone"
echo "student alone: $((SECONDS - START)) s"
START=$SECONDS
python bert/run_classifier_distill.py "${COMMON[@]}" \
  --bert_config_file="$WORK/student_config.json" \
  --learning_rate="${STUDENT_LEARNING_RATE:-5e-4}" --num_train_epochs="${STUDENT_EPOCHS:-3}" \
  --teacher_model="$WORK/export/teacher" --temperature="${TEMPERATURE:-4}" \
  --alpha="${ALPHA:-0.7}" --output_dir="$WORK/student_distilled"
echo "student distilled: $((SECONDS - START)) s"

for run in teacher student_alone student_distilled; do
  echo "== $run"
  grep -E "eval_accuracy|teacher_agreement|kl_teacher|global_step" "$WORK/$run/eval_results.txt"
done
