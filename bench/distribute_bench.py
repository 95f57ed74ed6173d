"""All-reduce overhead of --distribution=mirrored (issue 18): step time on 2 logical CPU devices
at a per-replica batch of B against one device at batch B (same per-replica work).

python bench/distribute_bench.py [--steps 40] [--batch 16] [--num_devices 2]
On a GPU machine --num_devices N uses N GPUs. Prints one line per setting and the ratio.
"""

import argparse
import contextlib
import io
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from bert import distribute  # noqa: E402


def seconds_per_step(root, distribution, batch, steps):
  import conftest
  from bert import classifier, classifier_data
  from bert.training import Trainer
  os.makedirs(root, exist_ok=True)
  vocab_file = conftest.write_vocab(os.path.join(root, "vocab.txt"))
  config = conftest.tiny_config(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=512)
  record_file = os.path.join(root, "train.tf_record")
  if not os.path.exists(record_file):
    conftest.write_feature_records(record_file, conftest.make_examples(
        conftest.review_lines(512, seed=5)), conftest.LABELS, vocab_file, conftest.MAX_SEQ_LENGTH)
  input_fn = classifier_data.input_fn_builder(record_file, True, conftest.MAX_SEQ_LENGTH,
                                              padding="fixed", seed=1)
  model_fn = classifier.model_fn_builder(config, conftest.LABELS, num_train_steps=steps)
  output_dir = os.path.join(root, "%s-%d-%d" % (distribution.name, batch, os.getpid()))
  trainer = Trainer(model_fn, output_dir, log_every_n_steps=10, distribution=distribution)
  buffer = io.StringIO()
  with contextlib.redirect_stdout(buffer):
    trainer.train(input_fn, steps, batch)
  # The progress lines' examples/s over each window of 10 steps; the first holds the warm-up.
  rates = [float(m) for m in re.findall(r" ([0-9.]+) ex/s", buffer.getvalue())][1:]
  return batch / statistics.median(rates)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--batch", type=int, default=16, help="per-replica batch")
  parser.add_argument("--num_devices", type=int, default=2)
  parser.add_argument("--root", default="output/distribute_bench")
  args = parser.parse_args()
  mirrored = distribute.Distribution.create("mirrored", args.num_devices)
  n = mirrored.num_replicas
  one = seconds_per_step(args.root, distribute.Distribution(), args.batch, args.steps)
  many = seconds_per_step(args.root, mirrored, args.batch * n, args.steps)
  whole = seconds_per_step(args.root, distribute.Distribution(), args.batch * n, args.steps)
  print("one device, batch %d: %.1f ms/step" % (args.batch, one * 1e3))
  print("one device, batch %d (the same global batch): %.1f ms/step" % (args.batch * n,
                                                                       whole * 1e3))
  print("mirrored, %d replicas x batch %d: %.1f ms/step (%.2fx; overhead %.1f ms/step)" %
        (n, args.batch, many * 1e3, many / one, (many - one) * 1e3))


if __name__ == "__main__":
  main()
