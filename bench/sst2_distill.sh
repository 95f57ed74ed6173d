#!/usr/bin/env bash
# SST-2: MiniLM-L6 teacher → 2-layer student alone, distilled on logits, and on logits + an
# augmented transfer set; writes output/sst2/results.md. Arguments go to bench/sst2_distill.py:
#
#   bash bench/sst2_distill.sh                      # 3 seeds, augment copies 2 (≈ 80 min, 2 cores)
#   bash bench/sst2_distill.sh --quick              # smoke run (a few minutes)
#   bash bench/sst2_distill.sh --augment_copies 2,5 --variant 'tinybert:--distill_preset=tinybert'
#   # the best recipe measured (bench/sst2-cpu.md: >= 50 % of the gap in 2 of 3 seeds, ~2 h):
#   bash bench/sst2_distill.sh --student_init teacher --transfer_epoch --teacher_logits cached \
#       --augment_copies 5 --augment_min_length 10 --augment_ngram_prob 0 --students alone,transfer
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec python bench/sst2_distill.py "$@"
