"""Intermediate matches and several teachers against logits-only distillation, on waimai from
scratch: dev accuracy over seeds, each variant the same student, steps and seed.

  python bench/matches_bench.py [--seeds 1,2,3] [--epochs 1] [--variants alone,logits_t1,...]
      [--augment_copies N [--augment_ngram_prob P]] [--work_dir output/bench/matches]

Not a test. Teachers: 4 × 256 models (4 heads) trained from scratch with seeds 1, 2 and 3
(lr 5e-4, 3 epochs, as bench/collapse_bench.py trains them; an existing teacher_seedN with
eval_results.txt is reused) and exported with their intermediate tensors. Student: 2 × 128 with
the teachers' 4 heads (attention matches need equal head counts), lr 1e-3, T=2, alpha 0.7.
Variants (one run per seed each):

  alone        the student trained alone (run_classifier.py)
  logits_t1    Hinton's loss against teacher 1 (cached logits); logits_t2 likewise teacher 2
  logits_t12   against teachers 1 and 2 (their softened probabilities averaged, online)
  logits_t3    against teacher 3; logits_t23 against teachers 2 and 3 (cached logits)
  tinybert     logits + the tinybert preset against teacher 1 (online)
  pkd_skip     logits + the pkd_skip preset against teacher 1 (online)
  minilm       logits + the minilm preset against teacher 1 (online)
  tinybert_t2  logits + the tinybert preset against teacher 2 (online)

--augment_copies N: every distilled variant trains on the labelled set plus a transfer set of N
augmented copies of each training text (the teachers label them; --epochs then counts epochs of
labelled + transfer examples), seeded by the student's seed; the student alone is unchanged.

Writes work_dir/results.md: per variant the dev accuracy of each seed, their mean and spread
(max − min), the mean gain over logits_t1 and over alone, and wall time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import markdown  # noqa: E402
from bench.collapse_bench import cpu_flags, read_accuracy, read_metric, write_config  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "waimai")
TEACHER = {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 1024}
STUDENT = {"hidden": 128, "layers": 2, "heads": 4, "intermediate": 512}
VARIANTS = {
    "alone": None,
    "logits_t1": (["t1"], ["--teacher_logits=cached"]),
    "logits_t2": (["t2"], ["--teacher_logits=cached"]),
    "logits_t12": (["t1", "t2"], ["--teacher_logits=online"]),
    "logits_t3": (["t3"], ["--teacher_logits=cached"]),
    "logits_t23": (["t2", "t3"], ["--teacher_logits=cached"]),
    "tinybert": (["t1"], ["--distill_preset=tinybert"]),
    "pkd_skip": (["t1"], ["--distill_preset=pkd_skip"]),
    "minilm": (["t1"], ["--distill_preset=minilm"]),
    "tinybert_t2": (["t2"], ["--distill_preset=tinybert"]),
}


def run(command, log_file):
  """Runs `python command...` from the repo root; returns wall seconds, exits on failure."""
  started = time.time()
  with open(log_file, "w", encoding="utf-8") as out:
    code = subprocess.call([sys.executable] + command, cwd=ROOT, stdout=out,
                           stderr=subprocess.STDOUT)
  if code:
    sys.exit("failed (exit %d): see %s" % (code, log_file))
  return time.time() - started


def common(args, vocab, config, output_dir, seed):
  return ["--task_name=emotion", "--data_dir=" + args.data_dir, "--vocab_file=" + vocab,
          "--bert_config_file=" + config, "--output_dir=" + output_dir, "--do_eval",
          "--max_seq_length=128", "--train_batch_size=32", "--eval_batch_size=64",
          "--seed=%d" % seed, "--log_every_n_steps=100", "--save_checkpoints_steps=100000"]


def teacher_export(args, vocab, config, seed):
  """Trains (unless reused) and exports teacher `seed`; returns its export base directory."""
  output_dir = os.path.join(args.work_dir, "teacher_seed%d" % seed)
  export_dir = os.path.join(args.work_dir, "export", "teacher_seed%d" % seed)
  if not os.path.isfile(os.path.join(output_dir, "eval_results.txt")):
    seconds = run(["bert/run_classifier.py", "--do_train", "--learning_rate=5e-4",
                   "--num_train_epochs=3"] + common(args, vocab, config, output_dir, seed),
                  output_dir + ".log")
    print("teacher seed %d trained in %.0f s" % (seed, seconds), flush=True)
  if not os.path.isdir(export_dir):
    run(["bert/run_classifier.py", "--do_export", "--export_dir=" + export_dir] +
        common(args, vocab, config, output_dir, seed), output_dir + ".export.log")
  print("teacher seed %d: dev %.4f, export %s" % (seed, read_accuracy(output_dir), export_dir),
        flush=True)
  return export_dir


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default=os.path.join(ROOT, "output", "bench", "matches"))
  parser.add_argument("--data_dir", default=DATA)
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--epochs", type=float, default=1.0)
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--temperature", default="2")
  parser.add_argument("--alpha", default="0.7")
  parser.add_argument("--augment_copies", type=int, default=0,
                      help="transfer set: augmented copies of each training text for every "
                      "distilled variant (0: none)")
  parser.add_argument("--augment_ngram_prob", type=float, default=None,
                      help="--augment_ngram_prob of the transfer set (default: the flag's)")
  args = parser.parse_args()
  if not os.path.isfile(os.path.join(args.data_dir, "train.csv")):
    sys.exit("error: %s/train.csv not found (--data_dir)" % args.data_dir)
  variants = args.variants.split(",")
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    sys.exit("error: --variants: unknown %s (known: %s)" % (", ".join(unknown),
                                                            ", ".join(VARIANTS)))
  os.makedirs(args.work_dir, exist_ok=True)
  vocab = os.path.join(args.work_dir, "vocab.txt")
  if not os.path.isfile(vocab):
    subprocess.check_call([sys.executable, "scripts/build_vocab.py", "--input",
                           os.path.join(args.data_dir, "train.csv"), "--output", vocab,
                           "--min_count", "2"], cwd=ROOT)
  with open(vocab, encoding="utf-8") as f:
    vocab_size = sum(1 for line in f if line.strip())
  configs = {}
  for name, model in (("teacher", TEACHER), ("student", STUDENT)):
    configs[name] = os.path.join(args.work_dir, name + "_config.json")
    write_config(configs[name], model, vocab_size)
  teachers = {"t%d" % seed: teacher_export(args, vocab, configs["teacher"], seed)
              for seed in sorted({int(n[1]) for v in variants if VARIANTS[v]
                                  for n in VARIANTS[v][0]})}

  # The transfer set's flags (without the seed) and the suffix of its runs' directories.
  transfer_flags, transfer_suffix, transfer = [], "", ""
  if args.augment_copies:
    transfer_flags.append("--augment_copies=%d" % args.augment_copies)
    transfer_suffix = "_x%d" % args.augment_copies
    transfer = ", transfer set of %d augmented copies" % args.augment_copies
    if args.augment_ngram_prob is not None:
      transfer_flags.append("--augment_ngram_prob=%g" % args.augment_ngram_prob)
      transfer_suffix += "_ng%g" % args.augment_ngram_prob
      transfer += " (n-gram prob %g)" % args.augment_ngram_prob
  header = "# matches benchmark: waimai from scratch, student 2 × 128 (4 heads), %g epoch(s)%s, " \
      "T=%s, alpha %s; CPU flags: %s; %d CPUs" % (args.epochs, transfer, args.temperature,
                                                  args.alpha, cpu_flags(), os.cpu_count())
  print(header, flush=True)
  results = {}
  seeds = [int(s) for s in args.seeds.split(",")]
  for seed in seeds:
    for variant in variants:
      suffix = transfer_suffix if VARIANTS[variant] else ""
      output_dir = os.path.join(args.work_dir, "%s%s_seed%d" % (variant, suffix, seed))
      flags = common(args, vocab, configs["student"], output_dir, seed) + [
          "--do_train", "--learning_rate=1e-3", "--num_train_epochs=%g" % args.epochs]
      if VARIANTS[variant] is None:
        script = "bert/run_classifier.py"
      else:
        names, extra = VARIANTS[variant]
        script = "bert/run_classifier_distill.py"
        flags += ["--teacher_model=" + ",".join(teachers[n] for n in names),
                  "--temperature=" + args.temperature, "--alpha=" + args.alpha] + extra
        if transfer_flags:
          flags += transfer_flags + ["--augment_seed=%d" % seed]
      if os.path.isfile(os.path.join(output_dir, "eval_results.txt")):
        seconds = None
      else:
        seconds = run([script] + flags, output_dir + ".log")
      accuracy = read_accuracy(output_dir)
      agreement = read_metric(output_dir, "teacher_agreement", required=False)
      results[(variant, seed)] = (accuracy, agreement, seconds)
      print("%s seed %d: dev %.4f%s" % (variant, seed, accuracy,
                                        "" if seconds is None else " in %.0f s" % seconds),
            flush=True)

  def mean(variant):
    return statistics.mean(results[(variant, s)][0] for s in seeds)

  rows = []
  for variant in variants:
    accuracies = [results[(variant, s)][0] for s in seeds]
    agreements = [results[(variant, s)][1] for s in seeds]
    times = [results[(variant, s)][2] for s in seeds if results[(variant, s)][2] is not None]
    rows.append([variant, " / ".join("%.4f" % a for a in accuracies),
                 "%.4f ± %.4f" % (statistics.mean(accuracies), (max(accuracies) - min(accuracies))
                                  / 2),
                 "%+.2f" % (100 * (mean(variant) - mean("logits_t1")))
                 if "logits_t1" in variants else "-",
                 "%+.2f" % (100 * (mean(variant) - mean("alone"))) if "alone" in variants else "-",
                 "-" if None in agreements else "%.4f" % statistics.mean(agreements),
                 "%.0f" % statistics.mean(times) if times else "reused"])
  lines = [header, ""] + markdown.table(
      ["variant", "dev acc (seeds %s)" % args.seeds, "mean ± half range",
       "vs logits_t1 (pt)", "vs alone (pt)", "agreement with its teacher(s)", "wall s"], rows)
  with open(os.path.join(args.work_dir, "results.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines[2:]))
  with open(os.path.join(args.work_dir, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"%s_seed%d" % key: value for key, value in results.items()}, f, indent=1)


if __name__ == "__main__":
  main()
