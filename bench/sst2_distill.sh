#!/usr/bin/env bash
# SST-2: MiniLM-L6 teacher → 2-layer student alone, distilled on logits, and on logits + an
# augmented transfer set; writes output/sst2/results.md. Arguments go to bench/sst2_distill.py:
#
#   bash bench/sst2_distill.sh                      # 3 seeds, augment copies 2 (≈ 80 min, 2 cores)
#   bash bench/sst2_distill.sh --quick              # smoke run (a few minutes)
#   bash bench/sst2_distill.sh --augment_copies 2,5 --variant 'tinybert:--distill_preset=tinybert'
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec python bench/sst2_distill.py "$@"
