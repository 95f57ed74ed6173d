"""A run's feature records, cached in its work_dir, and its test_results.tsv.

A split's TFRecord (train/dev/test.tf_record, unpadded features) is rebuilt only when what decides
it changed: the data file, the vocab, max_seq_length, casing, labels or the processor's options.
"""

import os

import numpy as np

from bert import classifier_data
from bert.errors import UsageError
from bert.training import log

FLAG_OF_SPLIT = {"train": "train", "dev": "eval", "test": "predict"}


def check_classes(examples, data_file):
  """A classifier learns nothing from one class: refuse training data holding only one."""
  classes = sorted({example.label for example in examples if example.label is not None})
  if len(classes) == 1:
    raise UsageError("data file %s: every training example has label %r (one class; a "
                     "classifier needs examples of at least two)" % (data_file, classes[0]))


def split_features(config, processor, tokenizer, split):
  """(path, sidecar info) of the split's TFRecord in config.work_dir, rebuilt if its inputs changed.

  Records: input_ids, segment_ids [length ≤ max_seq_length], label_ids []; info: num_examples,
  num_truncated, median_length, max_length, fingerprint, has_teacher_logits/has_label (False).
  """
  data_file = processor.data_file(config.data_dir, split)
  if not os.path.isfile(data_file):
    raise UsageError("data file %s: not found (needed by --do_%s)" %
                     (data_file, FLAG_OF_SPLIT[split]))
  fingerprint = classifier_data.features_fingerprint(
      data_file, config.vocab_file, config.max_seq_length, config.do_lower_case,
      config.label_list, processor.options())
  record_file = os.path.join(config.work_dir, "%s.tf_record" % split)
  info = classifier_data.cached_record_info(record_file, fingerprint)
  if info:
    log("Reusing %s (%d examples)" % (record_file, info["num_examples"]))
    return record_file, info
  examples = processor.get_examples(config.data_dir, split)
  if split == "train":
    check_classes(examples, data_file)
  features = classifier_data.convert_examples_to_features(
      examples, list(config.label_list), config.max_seq_length, tokenizer)
  truncated = sum(f.truncated for f in features)
  lengths = [len(f.input_ids) for f in features]
  info = classifier_data.write_records(
      record_file, (classifier_data.feature_to_example(f) for f in features), fingerprint,
      {"num_truncated": truncated, "median_length": float(np.median(lengths)),
       "max_length": max(lengths)})
  log("Wrote %s: %d examples, median length %d tokens, %d truncated to max_seq_length %d" %
      (record_file, info["num_examples"], info["median_length"], truncated,
       config.max_seq_length))
  return record_file, info


def test_rows(processor, data_dir):
  """Per line of the test file: True (an example: its prediction), False (blank: a row of
  nan, so rows stay aligned with lines) or None (a header or a line the task skips: no row)."""
  data_file = processor.data_file(data_dir, "test")
  example_lines = {int(example.source.rsplit(":", 1)[1])
                   for example in processor.get_examples(data_dir, "test")}
  return [True if number in example_lines else False if processor.is_blank(text) else None
          for number, text in classifier_data.read_lines(data_file)]


def write_test_results(path, layout, predictions, num_labels):
  """path (atomically): one row of probabilities per example, of nan per blank line.

  layout: test_rows(); predictions: an iterator of {"probabilities": [num_labels]}, one per
  example in order. Returns the number of rows; a UsageError if the counts disagree.
  """
  blank_row = "\t".join(["nan"] * num_labels) + "\n"
  rows = 0
  with open(path + ".tmp", "w", encoding="utf-8") as writer:
    for kind in layout:
      if kind is None:
        continue
      if kind:
        prediction = next(predictions, None)
        if prediction is None:
          break
        writer.write("\t".join("%.8f" % p for p in prediction["probabilities"]) + "\n")
      else:
        writer.write(blank_row)
      rows += 1
  if rows != layout.count(True) + layout.count(False) or next(predictions, None) is not None:
    os.remove(path + ".tmp")
    raise UsageError("predicted %d rows for %d examples and blank lines" %
                     (rows, layout.count(True) + layout.count(False)))
  os.replace(path + ".tmp", path)
  blanks = [str(number) for number, kind in enumerate(layout, start=1) if kind is False]
  log("Wrote %s (%d rows%s)" % (path, rows, "; blank lines %s got rows of nan" %
                                ", ".join(blanks[:10] + ["..."] * (len(blanks) > 10))
                                if blanks else ""))
  return rows
