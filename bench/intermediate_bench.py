"""Cost of intermediate matches: the online training step with --distill_preset=tinybert against
the logits-only online step, on the same batches, interleaved in one process.

  python bench/intermediate_bench.py [--batch 32] [--seq 64] [--rounds 12] [--student_layers 2]

Not a test. The teacher is model/bert_config.json (4 layers, hidden 256, 4 heads), randomly
initialised and exported (only time is measured); the student has --student_layers layers of
width 128 with the teacher's 4 heads (TinyBERT's attention match needs equal head counts), so the
hidden and embedding matches go through 128 → 256 projections. Each round runs both steps on the
same batch in a rotated order; the figure is the median over rounds of the per-round ratio
(tinybert / logits-only), on wall time. Target: ≤ 1.25.
"""

import argparse
import os
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

from bert import modeling  # noqa: E402
from bench import perf_workers  # noqa: E402
from bert.distill_run import DistillRun  # noqa: E402
from bert.run_config import RunConfig  # noqa: E402
from bert.training import ModeKeys, session_config  # noqa: E402

tf1 = tf.compat.v1

TEACHER_CONFIG = os.path.join(ROOT, "model", "bert_config.json")
LABELS = ["0", "1"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def log(message):
  print(message, file=sys.stderr, flush=True)


def setup(work_dir, student_layers, max_seq_length):
  config = modeling.BertConfig.from_json_file(TEACHER_CONFIG)
  vocab_file = os.path.join(work_dir, "vocab.txt")
  with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("\n".join(SPECIALS + ["[unused%d]" % i for i in range(config.vocab_size -
                                                                  len(SPECIALS))]) + "\n")
  student = dict(config.to_dict(), num_hidden_layers=student_layers, hidden_size=128,
                 intermediate_size=512)
  student_config = os.path.join(work_dir, "student.json")
  with open(student_config, "w", encoding="utf-8") as f:
    f.write(modeling.BertConfig.from_dict(student).to_json_string())
  teacher = perf_workers.untrained_export(work_dir, "teacher", config, vocab_file, max_seq_length)
  data_dir = os.path.join(work_dir, "data")
  os.makedirs(data_dir)
  for split in ("train", "dev"):
    with open(os.path.join(data_dir, split + ".csv"), "w", encoding="utf-8") as f:
      f.write("placeholder&0\nplaceholder&1\n")
  return vocab_file, student_config, teacher, data_dir


def step_graph(work_dir, name, common, **overrides):
  """(session, train_op, placeholders) of one variant's online training step."""
  run = DistillRun(RunConfig.create(**dict(common, output_dir=os.path.join(work_dir, name),
                                           **overrides)))
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(1)
    features = {key: tf1.placeholder(tf.int32, [None, None], name=key)
                for key in ("input_ids", "input_mask", "segment_ids")}
    features["label_ids"] = tf1.placeholder(tf.int32, [None], name="label_ids")
    tf1.train.get_or_create_global_step()
    spec = run.trainer.model_fn(features, None, ModeKeys.TRAIN, {})
    init = tf1.global_variables_initializer()
  session = tf1.Session(graph=graph, config=session_config())
  session.run(init)
  return session, spec.train_op, features


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--seq", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=12)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--student_layers", type=int, default=2)
  args = parser.parse_args()
  work_dir = tempfile.mkdtemp(prefix="intermediate-bench-")
  try:
    vocab_file, student_config, teacher, data_dir = setup(work_dir, args.student_layers,
                                                          max(args.seq, 8))
    common = dict(task_name="emotion", data_dir=data_dir, vocab_file=vocab_file,
                  bert_config_file=student_config, teacher_model=teacher,
                  max_seq_length=max(args.seq, 8), do_train=True,
                  train_batch_size=args.batch)
    variants = {"logits": step_graph(work_dir, "logits", common),
                "tinybert": step_graph(work_dir, "tinybert", common, distill_preset="tinybert")}
    rng = np.random.RandomState(0)
    times = {name: [] for name in variants}
    ratios = []
    order = list(variants)
    for round_index in range(args.warmup + args.rounds):
      ids = rng.randint(len(SPECIALS), 4443, size=(args.batch, args.seq)).astype(np.int32)
      lengths = rng.randint(args.seq // 2, args.seq + 1, size=args.batch)
      mask = (np.arange(args.seq)[None, :] < lengths[:, None]).astype(np.int32)
      batch = {"input_ids": ids * mask, "input_mask": mask, "segment_ids": np.zeros_like(ids),
               "label_ids": rng.randint(0, 2, args.batch).astype(np.int32)}
      measured = {}
      order = order[1:] + order[:1]
      for name in order:
        session, train_op, features = variants[name]
        feed = {features[key]: batch[key] for key in features}
        start = time.perf_counter()
        session.run(train_op, feed)
        measured[name] = time.perf_counter() - start
      if round_index >= args.warmup:
        for name, seconds in measured.items():
          times[name].append(seconds)
        ratios.append(measured["tinybert"] / measured["logits"])
    for name in variants:
      print("%-9s online step: median %.1f ms over %d rounds" %
            (name, 1000 * statistics.median(times[name]), args.rounds))
    ratio = statistics.median(ratios)
    print("tinybert / logits-only online step: %.3fx (median of per-round ratios; batch %d x %d "
          "tokens, teacher 4x256, student %dx128; target <= 1.25) %s" %
          (ratio, args.batch, args.seq, args.student_layers, "OK" if ratio <= 1.25 else "OVER"))
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
  main()
