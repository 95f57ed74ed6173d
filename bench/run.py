#!/usr/bin/env python3
"""Performance benchmark: GEMM peak, training throughput, serving latency, peak memory.

    python bench/run.py [--quick | --all] [--output output/bench/perf.md]
    python bench/run.py --render output/bench/perf.json [--output output/bench/perf.md]

Every measurement runs in its own subprocess (`--worker ...`, bench/perf_workers.py), which
reports its results and its own peak resident memory (ru_maxrss). The parent only prepares the
shared inputs (a character vocab and TFRecords from ../shared/data/waimai/train.csv, untrained
checkpoints and SavedModel exports, all in a temporary work directory), schedules the workers in
interleaved rounds (bench/perf_measure.py) and writes the figures as JSON and the markdown report
(bench/perf_report.py, whose THRESHOLDS are the targets' PASS/FAIL limits).

FLOPs are counted from the config with modeling.forward_flops_per_token (embeddings excluded,
attention included); a training step costs 3 × the forward pass. For dynamic padding the FLOPs
of the padded shapes actually run are counted, and the FLOPs of the real tokens (each example at
its own length) are shown next to them.
"""

import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from bench import perf_measure, perf_report, perf_workers  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "waimai", "train.csv")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="fp32 training without XLA, fewer GEMM and serving repeats "
                      "(about 2 minutes on an idle 2-core machine)")
  parser.add_argument("--all", action="store_true",
                      help="also bf16 and fp16 with XLA at dynamic padding (about 5 minutes "
                      "more: XLA compiles each length bucket)")
  parser.add_argument("--output", default=os.path.join("output", "bench", "perf.md"))
  parser.add_argument("--workdir", default=None, help="keep the prepared inputs here")
  parser.add_argument("--data", default=SHARED_DATA, help="waimai train.csv")
  parser.add_argument("--render", default=None,
                      help="only rewrite the report from a previous run's .json")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--spec", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return perf_workers.worker_main(args.worker, args.spec)
  if args.render:
    with open(args.render, encoding="utf-8") as f:
      return perf_report.write_report(json.load(f), args.output)

  data = perf_measure.measure(quick=args.quick, all_combos=args.all, workdir=args.workdir,
                              data_file=args.data)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as f:
    json.dump(data, f, indent=1)
  return perf_report.write_report(data, args.output)


if __name__ == "__main__":
  sys.exit(main())
