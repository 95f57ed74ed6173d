"""Distillation cost: student step times with and without its teacher, and soft-label throughput.

  python bench/distill_bench.py [--quick] [--keep WORK_DIR]

Not a test. In one process, on the same batches (batch 32 × 128 tokens, and when
../shared/data/waimai exists the waimai training batches at their dynamic bucketed lengths):

  * plain    the student's training step with the hard-label loss (run_classifier's model_fn);
  * online   the student's step with the frozen teacher imported into its graph (DistillRun's loss);
  * cached   the student's step with Hinton's loss on teacher logits fed with the features;
  * teacher  the teacher's forward pass alone (the same frozen graph the online step imports).

Targets: online / (plain + teacher) ≤ 1.1 (running the teacher inside the student's step costs no
more than running it separately), cached / plain ≤ 1.05 (cached logits are free).

Soft labels: the reference fork's path — one SavedModel predictor call per example, padded to
max_seq_length, batch 1 (as tf.contrib.predictor did per example while writing its features) —
against Teacher.write_logits (batched, unpadded records). Target ≥ 20×.

The teacher is model/bert_config.json (4 layers, hidden 256), the student
model/bert_config_student.json (1 layer, hidden 128), both randomly initialised: only time is
measured. Measurements are interleaved in rounds (each round runs every variant on the same
batches, in a rotated order) and each figure is the median over rounds; ratios are the median of
the per-round ratios, on wall time and on this process's CPU time, so slow drifts of machine load
cancel. Writes output/bench/distill.md.
"""

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bert import quiet  # noqa: E402

quiet.configure()  # before TensorFlow: its C++ start-up notices

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert import classifier, classifier_data, distillation, modeling  # noqa: E402
from bench import perf_workers  # noqa: E402
from bert.distill_run import DistillRun  # noqa: E402
from bert.run_config import RunConfig  # noqa: E402
from bert.loaded_export import LoadedExport  # noqa: E402
from bert.training import ModeKeys, session_config  # noqa: E402


tf1 = tf.compat.v1

WAIMAI = os.path.join(os.path.dirname(ROOT), "shared", "data", "waimai")
TEACHER_CONFIG = os.path.join(ROOT, "model", "bert_config.json")
STUDENT_CONFIG = os.path.join(ROOT, "model", "bert_config_student.json")
LABELS = ["0", "1"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_SEQ_LENGTH = 128
BATCH_SIZE = 32
VARIANTS = ("plain", "online", "cached", "teacher")


def log(message):
  print(message, file=sys.stderr, flush=True)


# -- setup -----------------------------------------------------------------------------------

def build_vocab_file(path, vocab_size):
  """The waimai vocabulary (scripts/build_vocab.py) when the data is there, padded to vocab_size."""
  tokens = list(SPECIALS)
  if os.path.isdir(WAIMAI):
    spec = importlib.util.spec_from_file_location(
        "build_vocab", os.path.join(ROOT, "scripts", "build_vocab.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(os.path.join(WAIMAI, "train.csv"), encoding="utf-8") as f:
      texts = [line.rstrip("\n").rpartition("&")[0] for line in f]
    tokens = module.build_vocab(texts, min_count=2, max_size=vocab_size)
  tokens += ["[unused%d]" % i for i in range(vocab_size - len(tokens))]
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens[:vocab_size]) + "\n")
  return path


def data_dir_for(work_dir):
  """The task directory: waimai, or a synthetic one (only its presence matters for the run)."""
  if os.path.isdir(WAIMAI):
    return WAIMAI
  path = os.path.join(work_dir, "data")
  os.makedirs(path, exist_ok=True)
  for split in ("train", "dev"):
    with open(os.path.join(path, split + ".csv"), "w", encoding="utf-8") as f:
      f.write("placeholder&0\nplaceholder&1\n")
  return path


def distill_run(work_dir, vocab_file, teacher_export, data_dir):
  """A DistillRun with run_classifier_distill's defaults (T=2, alpha=0.5): its teacher and loss."""
  return DistillRun(RunConfig.create(
      task_name="emotion", data_dir=data_dir, vocab_file=vocab_file,
      bert_config_file=STUDENT_CONFIG, output_dir=os.path.join(work_dir, "student"),
      teacher_model=teacher_export, max_seq_length=MAX_SEQ_LENGTH, do_train=True,
      train_batch_size=BATCH_SIZE))


def fixed_batches(vocab_size, count, rng):
  batches = []
  for _ in range(count):
    ids = rng.randint(len(SPECIALS), vocab_size, size=(BATCH_SIZE, MAX_SEQ_LENGTH))
    ids[:, 0], ids[:, -1] = 2, 3
    batches.append({"input_ids": ids.astype(np.int32),
                    "input_mask": np.ones_like(ids, dtype=np.int32),
                    "segment_ids": np.zeros_like(ids, dtype=np.int32),
                    "label_ids": rng.randint(0, 2, BATCH_SIZE).astype(np.int32)})
  return batches


def waimai_records(run, work_dir, split, limit):
  """Unpadded feature records of the first `limit` waimai examples of a split."""
  examples = run.processor.get_examples(WAIMAI, split)[:limit]
  features = classifier_data.convert_examples_to_features(examples, LABELS, MAX_SEQ_LENGTH,
                                                          run.tokenizer)
  path = os.path.join(work_dir, "%s-%d.tf_record" % (split, limit))
  classifier_data.write_records(path, (classifier_data.feature_to_example(f) for f in features),
                                {"bench": split}, {})
  return path, features


def training_batches(record_file, count):
  """The first `count` batches of the training input pipeline (bucketed dynamic padding)."""
  input_fn = classifier_data.input_fn_builder(record_file, True, MAX_SEQ_LENGTH, seed=3)
  with tf.Graph().as_default():
    features, _ = tf1.data.make_one_shot_iterator(input_fn({"batch_size": BATCH_SIZE})).get_next()
    with tf1.Session() as session:
      return [session.run(features) for _ in range(count)]


# -- the four step variants ------------------------------------------------------------------

class Variant(object):
  """One graph and session; step(batch) runs what the trainer runs for one step."""

  def __init__(self, name, build):
    self.name = name
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(1)
      self.inputs = {n: tf1.placeholder(tf.int32, [None, None], name=n)
                     for n in ("input_ids", "input_mask", "segment_ids")}
      self.inputs["label_ids"] = tf1.placeholder(tf.int32, [None], name="label_ids")
      if name == "cached":
        self.inputs["teacher_logits"] = tf1.placeholder(tf.float32, [None, len(LABELS)],
                                                        name="teacher_logits")
      self.fetch = build(self.inputs)
      init = tf1.global_variables_initializer()
      self.graph.finalize()
    self.session = tf1.Session(graph=self.graph, config=session_config())
    self.session.run(init)
    self.logits = np.random.RandomState(0).randn(BATCH_SIZE, len(LABELS)).astype(np.float32)

  def step(self, batch):
    feed = {self.inputs[n]: batch[n] for n in ("input_ids", "input_mask", "segment_ids",
                                                 "label_ids") if n in self.inputs}
    if "teacher_logits" in self.inputs:
      feed[self.inputs["teacher_logits"]] = self.logits[:len(batch["label_ids"])]
    self.session.run(self.fetch, feed)

  def window(self, batches):
    """(wall seconds, CPU seconds of this process) per step over the batches."""
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
      self.step(batch)
    return ((time.perf_counter() - wall) / len(batches),
            (time.process_time() - cpu) / len(batches))


def build_variants(run):
  student = modeling.BertConfig.from_json_file(STUDENT_CONFIG)

  def train_step(loss_builder):
    def build(features):
      tf1.train.get_or_create_global_step()
      model_fn = classifier.model_fn_builder(student, LABELS, learning_rate=1e-4,
                                             num_train_steps=10 ** 6, num_warmup_steps=0,
                                             loss_builder=loss_builder)
      spec = model_fn(features, None, ModeKeys.TRAIN, {})
      return {"train_op": spec.train_op, "loss": spec.loss, "summaries": spec.summaries}
    return build

  def teacher_forward(features):
    return run.teacher.logits(features["input_ids"], features["input_mask"],
                              features["segment_ids"])

  builders = {"plain": train_step(None), "online": train_step(run.loss_builder()),
              "cached": train_step(run.loss_builder()), "teacher": teacher_forward}
  variants = {}
  for name in VARIANTS:
    started = time.time()
    variants[name] = Variant(name, builders[name])
    log("  built %s in %.1fs" % (name, time.time() - started))
  return variants


def time_steps(variants, batches, rounds):
  """Interleaved rounds. Returns ({variant: median wall s/step}, {ratio name: (median, min, max)}).

  Ratios are taken per round, on wall time and on this process's CPU time (the latter barely
  moves when other processes load the machine), then summarised over rounds.
  """
  for variant in variants.values():  # warm up: every shape once (graph optimisation, allocators)
    for batch in {b["input_ids"].shape: b for b in batches}.values():
      variant.step(batch)
    variant.step(batches[0])
  wall = {name: [] for name in variants}
  cpu = {name: [] for name in variants}
  order = list(variants)
  for index in range(rounds):
    for name in order[index % len(order):] + order[:index % len(order)]:
      seconds, cpu_seconds = variants[name].window(batches)
      wall[name].append(seconds)
      cpu[name].append(cpu_seconds)
  ratios = {}
  for clock, times in (("wall", wall), ("cpu", cpu)):
    online = [o / (p + t) for o, p, t in zip(times["online"], times["plain"], times["teacher"])]
    cached = [c / p for c, p in zip(times["cached"], times["plain"])]
    ratios["online_" + clock] = (statistics.median(online), min(online), max(online))
    ratios["cached_" + clock] = (statistics.median(cached), min(cached), max(cached))
  return {name: statistics.median(times) for name, times in wall.items()}, ratios


# -- soft labels -----------------------------------------------------------------------------

def reference_soft_labels(teacher_dir, features, count):
  """Examples per second of one predictor call per example, padded to max_seq_length, batch 1."""
  loaded = LoadedExport(teacher_dir, session_config=session_config())
  session, inputs = loaded.session, loaded.inputs()
  output = loaded.outputs()["probabilities"]

  def predict(feature):
    ids = np.zeros([1, MAX_SEQ_LENGTH], np.int32)
    mask, segments = np.zeros_like(ids), np.zeros_like(ids)
    length = len(feature.input_ids)
    ids[0, :length], mask[0, :length], segments[0, :length] = (feature.input_ids, 1,
                                                               feature.segment_ids)
    return session.run(output, {inputs["input_ids"]: ids, inputs["input_mask"]: mask,
                                inputs["segment_ids"]: segments})

  for feature in features[:3]:
    predict(feature)
  chosen = features[:count]
  started = time.perf_counter()
  for feature in chosen:
    predict(feature)
  elapsed = time.perf_counter() - started
  session.close()
  return len(chosen) / elapsed


def our_soft_labels(teacher_dir, record_file, work_dir):
  """(examples/s of Teacher.write_logits, seconds of the one-off teacher load and freeze)."""
  output = os.path.join(work_dir, "soft-%d.tf_record" % time.time_ns())
  started = time.perf_counter()
  teacher = distillation.Teacher(teacher_dir)
  teacher.frozen_graph()
  loaded = time.perf_counter()
  info = teacher.write_logits(record_file, output, {"bench": True})
  return info["num_examples"] / (time.perf_counter() - loaded), loaded - started


def fixed_length_records(work_dir, vocab_size, count, rng):
  features = []
  for _ in range(count):
    ids = rng.randint(len(SPECIALS), vocab_size, size=MAX_SEQ_LENGTH).tolist()
    ids[0], ids[-1] = 2, 3
    features.append(classifier_data.InputFeatures(ids, [0] * MAX_SEQ_LENGTH, int(rng.randint(2))))
  path = os.path.join(work_dir, "fixed-%d.tf_record" % count)
  classifier_data.write_records(path, (classifier_data.feature_to_example(f) for f in features),
                                {"bench": "fixed"}, {})
  return path, features


# -- report ----------------------------------------------------------------------------------

def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="fewer rounds and examples (~1 min)")
  parser.add_argument("--keep", default=None, help="work directory to keep (default: a temp dir)")
  parser.add_argument("--output", default=os.path.join(ROOT, "output", "bench", "distill.md"))
  args = parser.parse_args()
  rounds = 3 if args.quick else 9
  fixed_steps = 2 if args.quick else 3
  dynamic_steps = 8 if args.quick else 16
  ours_count, ref_count = (256, 48) if args.quick else (1024, 160)
  work_dir = args.keep or tempfile.mkdtemp(prefix="distill_bench_")
  os.makedirs(work_dir, exist_ok=True)
  load_before = os.getloadavg()[0]
  started = time.time()
  rng = np.random.RandomState(0)
  try:
    teacher_config = modeling.BertConfig.from_json_file(TEACHER_CONFIG)
    vocab_file = build_vocab_file(os.path.join(work_dir, "vocab.txt"), teacher_config.vocab_size)
    teacher_dir = perf_workers.untrained_export(work_dir, "teacher", teacher_config,
                                                 vocab_file, MAX_SEQ_LENGTH)
    run = distill_run(work_dir, vocab_file, teacher_dir, data_dir_for(work_dir))
    log("Building the step graphs")
    variants = build_variants(run)

    settings = [("fixed %d×%d" % (BATCH_SIZE, MAX_SEQ_LENGTH),
                 fixed_batches(teacher_config.vocab_size, fixed_steps, rng))]
    soft_sets = []
    if os.path.isdir(WAIMAI):
      train_file, _ = waimai_records(run, work_dir, "train", 4096)
      batches = training_batches(train_file, dynamic_steps)
      mean_len = np.mean([b["input_ids"].shape[1] for b in batches])
      settings.append(("waimai dynamic %d×~%.0f" % (BATCH_SIZE, mean_len), batches))
      dev_file, dev_features = waimai_records(run, work_dir, "dev", ours_count)
      soft_sets.append(("waimai dev (median %d tokens)" % np.median(
          [len(f.input_ids) for f in dev_features]), dev_file, dev_features))
    fixed_file, fixed_features = fixed_length_records(work_dir, teacher_config.vocab_size,
                                                      ours_count // 2, rng)
    soft_sets.append(("all %d tokens" % MAX_SEQ_LENGTH, fixed_file, fixed_features))

    step_rows = []
    for label, batches in settings:
      log("Timing steps: %s (%d rounds)" % (label, rounds))
      medians, ratios = time_steps(variants, batches, rounds)
      step_rows.append((label, medians, ratios))
    for variant in variants.values():
      variant.session.close()

    soft_rows = []
    for label, record_file, features in soft_sets:
      log("Timing soft labels: %s" % label)
      ours, load_seconds = our_soft_labels(teacher_dir, record_file, work_dir)
      reference = reference_soft_labels(teacher_dir, features, min(ref_count, len(features)))
      soft_rows.append((label, len(features), min(ref_count, len(features)), reference, ours,
                        load_seconds))
  finally:
    if not args.keep:
      shutil.rmtree(work_dir, ignore_errors=True)

  lines = ["# Distillation benchmark", "",
           "%s; TensorFlow %s; %d CPUs; %s; load average %.1f before, %.1f after; %s run in "
           "%.0fs." % (time.strftime("%Y-%m-%d %H:%M"), tf.__version__, os.cpu_count(),
                       platform.processor() or platform.machine(), load_before,
                       os.getloadavg()[0], "--quick" if args.quick else "full",
                       time.time() - started),
           "Teacher 4 layers/256 (model/bert_config.json), student 1 layer/128 "
           "(model/bert_config_student.json), untrained; batch %d. Median of %d interleaved "
           "rounds." % (BATCH_SIZE, rounds), "",
           "| batches | plain student ms/step | online ms/step | cached ms/step | teacher forward "
           "ms | online / (plain + teacher), wall (≤ 1.1) | same, CPU time | cached / plain, "
           "wall (≤ 1.05) | same, CPU time |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for label, m, r in step_rows:
    cells = ["%.3f (%.2f–%.2f)" % r[key] for key in ("online_wall", "online_cpu", "cached_wall",
                                                       "cached_cpu")]
    lines.append("| %s | %.1f | %.1f | %.1f | %.1f | %s |" % (
        label, 1e3 * m["plain"], 1e3 * m["online"], 1e3 * m["cached"], 1e3 * m["teacher"],
        " | ".join(cells)))
  lines += ["", "Ratios: median over rounds of the per-round ratio (min–max in brackets); CPU "
            "time is this process's, all threads, so other processes on the machine barely "
            "move it."]
  lines += ["", "Soft labels: the reference fork's one predictor call per example (batch 1, padded "
            "to %d) against Teacher.write_logits (length-sorted batches of ≤ 2048 tokens, "
            "unpadded records, "
            "written out). Neither counts loading the SavedModel; ours is shown apart "
            "(load and freeze, once per run)." % MAX_SEQ_LENGTH, "",
            "| examples | reference ex/s (n) | write_logits ex/s (n) | teacher load s | "
            "speed-up (≥ 20×) |", "| --- | ---: | ---: | ---: | ---: |"]
  for label, n_ours, n_ref, reference, ours, load_seconds in soft_rows:
    lines.append("| %s | %.1f (%d) | %.1f (%d) | %.1f | %.1f× |" % (
        label, reference, n_ref, ours, n_ours, load_seconds, ours / reference))
  table = "\n".join(lines) + "\n"
  print(table)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w", encoding="utf-8") as f:
    f.write(table)
  log("Wrote %s" % args.output)


if __name__ == "__main__":
  main()
