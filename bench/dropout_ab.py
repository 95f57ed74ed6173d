"""Training step with this toolkit's dropout against tf.nn.dropout, side by side in one process.

  python bench/dropout_ab.py [--rounds 12] [--precisions fp32,bf16] [--batch 32] [--seq 128]

Not a test. The teacher shape (model/bert_config.json, 4 × 256), fixed-length random batches,
the training graph as Trainer.build_train_graph builds it at each precision (elementwise XLA
clusters as --xla_elementwise=auto picks them at --padding=fixed), twice: once with
modeling.dropout (two 16-bit draws per random word) and once with the tf.nn.dropout it
replaced (one 32-bit word per element). Rounds alternate the order; each round times 3 steps
of each. Printed: examples/s (medians) and the median of the per-round ratios
old time / new time (> 1: the new dropout is faster).
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bert import quiet  # noqa: E402

quiet.configure()  # before TensorFlow: its C++ start-up notices

from bert import hardware  # noqa: E402

# Allow the elementwise clusters before TensorFlow reads its flags (as entry_point does).
os.environ["TF_XLA_FLAGS"] = " ".join(hardware.ELEMENTWISE_JIT_FLAGS)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.collapse_bench import cpu_flags  # noqa: E402
from bench import perf_workers  # noqa: E402
from bert import modeling, training  # noqa: E402

tf1 = tf.compat.v1
STEPS_PER_ROUND = 3


def tf_nn_dropout(x, rate):
  """The dropout modeling.dropout replaced."""
  return x if not rate else tf.nn.dropout(x, rate=rate)


def build_step(config, precision, batch, seq, dropout, workdir):
  """A session and the fetches of one training step whose encoder uses `dropout`."""
  rng = np.random.RandomState(0)
  ids = rng.randint(5, config.vocab_size, size=[8, batch, seq]).astype(np.int32)
  labels = rng.randint(0, 2, size=[8, batch]).astype(np.int32)

  def input_fn(params):
    del params

    def features(example):
      f = {"input_ids": example["input_ids"], "label_ids": example["label_ids"],
           "segment_ids": tf.zeros_like(example["input_ids"]),
           "input_mask": tf.ones_like(example["input_ids"])}
      return f, f["label_ids"]

    return tf.data.Dataset.from_tensor_slices(
        {"input_ids": ids, "label_ids": labels}).map(features).repeat()

  jit = hardware.choose_elementwise_jit("auto", precision, "fixed")[0]
  kept, modeling.dropout = modeling.dropout, dropout
  try:
    graph = tf.Graph()
    with graph.as_default():
      tf1.set_random_seed(1)
      trainer = training.Trainer(perf_workers.benchmark_model_fn(config, precision), workdir,
                                 params={"seed": 1})
      model = trainer.build_train_graph(input_fn, batch)
      init = tf1.global_variables_initializer()
      local_init = tf1.group(tf1.local_variables_initializer(), tf1.tables_initializer())
  finally:
    modeling.dropout = kept
  session = tf1.Session(graph=graph, config=training.session_config(False, jit))
  session.run(local_init)
  session.run(init)
  fetches = {"train_op": model.train_op, "loss": model.loss}
  for _ in range(3):  # warm-up: XLA compiles its clusters on the first runs
    session.run(fetches)
  return session, fetches, jit


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=12)
  parser.add_argument("--precisions", default="fp32,bf16")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--seq", type=int, default=128)
  parser.add_argument("--workdir", default=os.path.join("output", "bench", "dropout_ab"))
  args = parser.parse_args()
  config = modeling.BertConfig.from_json_file(os.path.join(ROOT, "model", "bert_config.json"))
  print("# dropout A/B: TensorFlow %s; CPU flags: %s; %d cores; load average %.2f" % (
      tf.__version__, cpu_flags(), os.cpu_count(), os.getloadavg()[0]))
  for precision in args.precisions.split(","):
    steps = {name: build_step(config, precision, args.batch, args.seq, dropout,
                              os.path.join(args.workdir, precision, name))
             for name, dropout in (("tf.nn.dropout", tf_nn_dropout),
                                   ("modeling.dropout", modeling.dropout))}
    seconds = {name: [] for name in steps}
    names = sorted(steps)
    for round_index in range(args.rounds):
      for name in names if round_index % 2 == 0 else names[::-1]:
        session, fetches, _ = steps[name]
        started = time.perf_counter()
        for _ in range(STEPS_PER_ROUND):
          loss = session.run(fetches)["loss"]
        seconds[name].append((time.perf_counter() - started) / STEPS_PER_ROUND)
        if not np.isfinite(loss):
          raise RuntimeError("%s %s: loss is %s" % (precision, name, loss))
    ratios = [old / new for old, new in zip(seconds["tf.nn.dropout"], seconds["modeling.dropout"])]
    print("%s (elementwise XLA %s), batch %d × %d, %d rounds: tf.nn.dropout %.1f ex/s, "
          "modeling.dropout %.1f ex/s; old time / new time %.3f× (rounds %.2f–%.2f)" % (
              precision, "on" if steps["modeling.dropout"][2] else "off", args.batch, args.seq,
              args.rounds, args.batch / statistics.median(seconds["tf.nn.dropout"]),
              args.batch / statistics.median(seconds["modeling.dropout"]),
              statistics.median(ratios), min(ratios), max(ratios)))
    print("  load average now %.2f" % os.getloadavg()[0])
    for session, _, _ in steps.values():
      session.close()


if __name__ == "__main__":
  main()
