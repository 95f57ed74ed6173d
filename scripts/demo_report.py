"""Evaluates exported models on dev and test and prints the demo's results table.

  python scripts/demo_report.py --data_dir data/demo --output output/demo/results.md \
      --model teacher=export/teacher --model student=export/student_alone ...

Every figure comes from the exported SavedModels themselves, run in-process the way a server
runs them: accuracy on the dev and test splits, and milliseconds per example at batch 1.
The first --model is the reference for the speedup column.
"""

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":  # before TensorFlow loads (BERT_VERBOSE=1 keeps its notices)
  from bert import quiet  # noqa: E402
  quiet.configure()

import numpy as np  # noqa: E402

from bert import classifier_data, modeling  # noqa: E402
from bert.errors import UsageError, run_main  # noqa: E402
from bert.predictor import ExportedClassifier  # noqa: E402


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", required=True, help="Directory with dev.csv and test.csv.")
  parser.add_argument("--model", action="append", required=True, metavar="NAME=EXPORT_DIR",
                      help="A model to report; the first is the speedup reference.")
  parser.add_argument("--output", help="Also write the table (markdown) here.")
  parser.add_argument("--latency_examples", type=int, default=200,
                      help="Test examples timed one by one per model.")
  return parser.parse_args(argv)


def load_split(data_dir, split):
  examples = classifier_data.EmotionProcessor().get_examples(data_dir, split)
  return [e.text_a for e in examples], np.array([int(e.label) for e in examples])


def accuracy(model, texts, labels):
  probabilities = model.predict(texts, batch_size=64)
  return float(np.mean(np.argmax(probabilities, -1) == labels)), probabilities


def latency_ms(models, texts, rounds=5):
  """Median ms per example at batch 1, models timed in alternating rounds to share the noise."""
  samples = {name: [] for name in models}
  encoded = {name: [m.encode([t]) for t in texts] for name, m in models.items()}
  for name, model in models.items():  # warm up: first runs allocate and pick kernels
    for batch in encoded[name][:10]:
      model.run(batch)
  chunk = max(1, len(texts) // rounds)
  for start in range(0, len(texts), chunk):
    for name, model in models.items():
      for batch in encoded[name][start:start + chunk]:
        begin = time.perf_counter()
        model.run(batch)
        samples[name].append((time.perf_counter() - begin) * 1000.0)
  return {name: float(np.median(values)) for name, values in samples.items()}


def build_table(rows):
  header = ("| model | layers | hidden | parameters | dev acc | test acc "
            "| agreement with %s (test) | ms per example (batch 1, SavedModel) | speedup vs %s |"
            % (rows[0]["name"], rows[0]["name"]))
  lines = [header, "|" + "---|" * 9]
  for row in rows:
    lines.append("| %s | %d | %d | %s | %.4f | %.4f | %.4f | %.2f | %.2fx |" % (
        row["name"], row["layers"], row["hidden"], "{:,}".format(row["parameters"]),
        row["dev_acc"], row["test_acc"], row["agreement"], row["ms"], row["speedup"]))
  return "\n".join(lines)


def main(argv):
  args = parse_args(argv)
  models = {}
  for spec in args.model:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
      raise UsageError("--model: expected NAME=EXPORT_DIR, got %r" % spec)
    models[name] = ExportedClassifier(path, flag="--model %s" % name)
  dev_texts, dev_labels = load_split(args.data_dir, "dev")
  test_texts, test_labels = load_split(args.data_dir, "test")

  rows, reference_probs = [], None
  for name, model in models.items():
    dev_acc, _ = accuracy(model, dev_texts, dev_labels)
    test_acc, probs = accuracy(model, test_texts, test_labels)
    if reference_probs is None:
      reference_probs = probs
    config = modeling.BertConfig.from_dict(model.info["bert_config"])
    rows.append({"name": name, "layers": config.num_hidden_layers, "hidden": config.hidden_size,
                 "parameters": modeling.count_parameters(config, len(model.labels)),
                 "dev_acc": dev_acc, "test_acc": test_acc,
                 "agreement": float(np.mean(np.argmax(probs, -1) ==
                                            np.argmax(reference_probs, -1)))})
    print("Evaluated %s: dev %.4f, test %.4f" % (name, dev_acc, test_acc), flush=True)

  timed = test_texts[:args.latency_examples]
  ms = latency_ms(models, timed)
  for row in rows:
    row["ms"] = ms[row["name"]]
    row["speedup"] = ms[rows[0]["name"]] / row["ms"]

  table = build_table(rows)
  stamp = "Measured %s on %s, %d CPU cores, %d dev / %d test examples." % (
      datetime.date.today().isoformat(), platform.processor() or platform.machine(),
      os.cpu_count() or 0, len(dev_texts), len(test_texts))
  print("\n" + table + "\n\n" + stamp)
  if args.output:
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(table + "\n\n" + stamp + "\n")
    print("Wrote %s" % args.output)


if __name__ == "__main__":
  run_main(main, sys.argv[1:])
