"""From scratch at ordinary learning rates: does training reach a real model, or collapse?

  python bench/collapse_bench.py [--seeds 1,2,3] [--work_dir output/bench/collapse]
                                 [--optimizers corrected,google] [--models small,teacher]
                                 [--flags "--precision=fp32" --tag _fp32]

On ../shared/data/waimai (char vocab built from its train split, min count 2), trains
  small:   2 layers × 128 (2 heads, I=512), lr 1e-3, 1 epoch
  teacher: 4 layers × 256 (4 heads, I=1024), lr 5e-4, 3 epochs
with batch 32, max_seq_length 128, once per seed and optimizer (`corrected`: the default Adam
with bias correction; `google`: --noadam_bias_correction, Google's TF1 update), and prints dev
accuracy per run, whether the collapse warning fired, and wall time. A benchmark, not a test:
it takes ~20 minutes on 2 cores for the defaults.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "waimai")

MODELS = {
    "small": {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512, "lr": 1e-3,
              "epochs": 1},
    "teacher": {"layers": 4, "hidden": 256, "heads": 4, "intermediate": 1024, "lr": 5e-4,
                "epochs": 3},
}
OPTIMIZERS = {"corrected": [], "google": ["--noadam_bias_correction"]}


def cpu_flags():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("flags"):
          wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
          return " ".join(flag for flag in line.split(":", 1)[1].split() if flag in wanted)
  except OSError:
    pass
  return "unknown"


def write_config(path, model, vocab_size):
  config = {"vocab_size": vocab_size, "hidden_size": model["hidden"],
            "num_hidden_layers": model["layers"], "num_attention_heads": model["heads"],
            "intermediate_size": model["intermediate"], "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
  with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=1)


def read_metric(output_dir, name, required=True):
  """A value of output_dir/eval_results.txt; absent: an error if required, else None."""
  with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
    for line in f:
      key, _, value = line.partition(" = ")
      if key.strip() == name:
        return float(value)
  if required:
    raise ValueError("no %s in %s" % (name, output_dir))
  return None


def read_accuracy(output_dir):
  return read_metric(output_dir, "eval_accuracy")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default=os.path.join(ROOT, "output", "bench", "collapse"))
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--models", default="small,teacher")
  parser.add_argument("--optimizers", default="corrected")
  parser.add_argument("--flags", default="", help="more flags for every run, e.g. "
                      "'--precision=fp32' (space-separated)")
  parser.add_argument("--tag", default="", help="appended to each run's directory name")
  args = parser.parse_args()
  if not os.path.isfile(os.path.join(DATA, "train.csv")):
    sys.exit("skipped: %s/train.csv is absent" % DATA)
  os.makedirs(args.work_dir, exist_ok=True)
  vocab = os.path.join(args.work_dir, "vocab.txt")
  if not os.path.isfile(vocab):
    subprocess.check_call([sys.executable, "scripts/build_vocab.py", "--input",
                           os.path.join(DATA, "train.csv"), "--output", vocab, "--min_count", "2"],
                          cwd=ROOT, stdout=subprocess.DEVNULL)
  with open(vocab, encoding="utf-8") as f:
    vocab_size = sum(1 for line in f if line.strip())
  print("# collapse benchmark: waimai from scratch; CPU flags: %s; %d CPUs" %
        (cpu_flags(), os.cpu_count()), flush=True)
  print("| model | lr | epochs | optimizer | seed | dev acc | collapse warning | wall s |")
  print("|---|---|---|---|---|---|---|---|", flush=True)
  rows = []
  for model_name in args.models.split(","):
    model = MODELS[model_name]
    config = os.path.join(args.work_dir, "%s_config.json" % model_name)
    write_config(config, model, vocab_size)
    for optimizer in args.optimizers.split(","):
      for seed in args.seeds.split(","):
        output_dir = os.path.join(args.work_dir,
                                  "%s_%s%s_seed%s" % (model_name, optimizer, args.tag, seed))
        command = [sys.executable, "bert/run_classifier.py", "--task_name=emotion",
                   "--data_dir=" + DATA, "--vocab_file=" + vocab, "--bert_config_file=" + config,
                   "--output_dir=" + output_dir, "--do_train", "--do_eval",
                   "--max_seq_length=128", "--train_batch_size=32", "--eval_batch_size=64",
                   "--learning_rate=%g" % model["lr"], "--num_train_epochs=%g" % model["epochs"],
                   "--seed=" + seed, "--log_every_n_steps=100",
                   "--save_checkpoints_steps=100000"] + OPTIMIZERS[optimizer] + args.flags.split()
        started = time.time()
        result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True)
        seconds = time.time() - started
        with open(output_dir + ".log", "w", encoding="utf-8") as f:
          f.write(result.stdout)
        if result.returncode:
          print("| %s | failed, see %s.log |" % (model_name, output_dir), flush=True)
          continue
        accuracy = read_accuracy(output_dir)
        warned = "yes" if "WARNING: the" in result.stdout else "no"
        rows.append((model_name, optimizer, accuracy))
        print("| %d × %d | %g | %g | %s | %s | %.4f | %s | %.0f |" %
              (model["layers"], model["hidden"], model["lr"], model["epochs"], optimizer, seed,
               accuracy, warned, seconds), flush=True)
  for model_name in args.models.split(","):
    for optimizer in args.optimizers.split(","):
      values = [a for m, o, a in rows if m == model_name and o == optimizer]
      if values:
        print("%s / %s: min %.4f, mean %.4f over %d seeds (target ≥ 0.85)" %
              (model_name, optimizer, min(values), sum(values) / len(values), len(values)))


if __name__ == "__main__":
  main()
