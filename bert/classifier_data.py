"""Classification data: text files → examples → unpadded features in TFRecord → padded batches.

Features are stored without padding; batches are padded to their longest example (or to their
length bucket when training), which on short texts such as the takeaway reviews (median 46
characters against max_seq_length 128) is most of the training speed.
"""

import csv
import glob
import hashlib
import json
import os
import random

import tensorflow as tf

from bert.errors import UsageError
from bert.processes import process_alive
# Re-exported: the examples and features are part of this module's API, as in Google's BERT.
from bert.features import (InputExample, InputFeatures, convert_examples_to_features,  # noqa: F401
                           convert_single_example, truncate_pair)

# Bump when the record layout changes: cached TFRecords of another version are rebuilt.
# 3: the sidecar says which optional fields the records hold (has_teacher_logits, has_label).
FEATURE_FORMAT_VERSION = 3


def read_lines(path):
  """Yields (line_number, text) of a UTF-8 file; a clear error if missing, empty or not UTF-8."""
  if not os.path.isfile(path):
    raise UsageError("data file %s: not found" % path)
  with open(path, "rb") as f:
    raw_lines = f.read().splitlines()
  if not any(line.strip() for line in raw_lines):
    raise UsageError("data file %s: empty (expected one example per line)" % path)
  for number, raw in enumerate(raw_lines, start=1):
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise UsageError("%s:%d: not valid UTF-8 at byte %d of the line (expected a UTF-8 text "
                       "file)" % (path, number, e.start + 1))
    yield number, text.lstrip("\ufeff") if number == 1 else text


class DataProcessor(object):
  """A task's files and labels, with Google's method names."""

  name = None
  split_files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}

  def get_train_examples(self, data_dir):
    return self.get_examples(data_dir, "train")

  def get_dev_examples(self, data_dir):
    return self.get_examples(data_dir, "dev")

  def get_test_examples(self, data_dir):
    return self.get_examples(data_dir, "test")

  def get_labels(self):
    raise NotImplementedError()

  def prepare(self, data_dir):
    """Hook run once before get_labels(), e.g. to discover labels from the training file."""

  def data_file(self, data_dir, split):
    return os.path.join(data_dir, self.split_files[split])

  def get_examples(self, data_dir, split):
    path = self.data_file(data_dir, split)
    examples = list(self.read_examples(path, split))
    if not examples:
      raise UsageError("data file %s: no examples found" % path)
    self._check_labels(examples, split)
    return examples

  def read_examples(self, path, split):
    raise NotImplementedError()

  def is_blank(self, line):
    """Whether read_examples skips `line` as blank (--do_predict gives it a row of nan)."""
    return not line.strip()

  def options(self):
    """What, besides the data, decides the examples: part of the feature cache's fingerprint."""
    return {"name": self.name}

  def _check_labels(self, examples, split):
    labels = set(self.get_labels())
    for example in examples:
      if example.label is None:
        if split != "test":
          raise UsageError("%s: no label (expected one of %s)" %
                           (example.source, ", ".join(self.get_labels())))
      elif example.label not in labels:
        raise UsageError("%s: label %r is not in the label list [%s]" %
                         (example.source, example.label, ", ".join(self.get_labels())))


class EmotionProcessor(DataProcessor):
  """The takeaway-review task: `text&label` per line, split on the last `&`; labels 0/1."""

  name = "emotion"
  split_files = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv"}

  def get_labels(self):
    return ["0", "1"]

  def read_examples(self, path, split):
    for number, line in read_lines(path):
      if not line.strip():
        continue
      source = "%s:%d" % (path, number)
      text, sep, label = line.rpartition("&")
      label = label.strip()
      if not sep or not label:
        if split == "test" and "&" not in line:
          text, label = line, None  # unlabelled test lines are allowed
        else:
          raise UsageError("%s: expected 'text&label', got %r" % (source, _clip(line)))
      if not text.strip():
        raise UsageError("%s: empty text (expected 'text&label' with text before the '&')" %
                         source)
      yield InputExample("%s-%d" % (split, number), text.strip(), None, label, source)


class CsvProcessor(DataProcessor):
  """Any delimited file: a text column, an optional second text column, a label column.

  Columns are 0-based indices or, with a header row, names. The label list is given, or read
  from the training file (sorted) so a new task needs no code.
  """

  name = "csv"

  def __init__(self, text_column="0", label_column="1", text_b_column="", delimiter="",
               has_header=False, labels=None):
    self.text_column = str(text_column)
    self.text_b_column = str(text_b_column or "")
    self.label_column = str(label_column)
    self.delimiter = delimiter
    self.has_header = has_header
    self.labels = list(labels) if labels else None

  def options(self):
    return {"name": self.name, "text": self.text_column, "text_b": self.text_b_column,
            "label": self.label_column, "delimiter": self.delimiter, "header": self.has_header}

  def data_file(self, data_dir, split):
    for extension in (".tsv", ".csv", ".txt"):
      path = os.path.join(data_dir, split + extension)
      if os.path.isfile(path):
        return path
    return os.path.join(data_dir, split + ".tsv")

  def prepare(self, data_dir):
    if self.labels:
      return
    path = self.data_file(data_dir, "train")
    labels = {e.label for e in self.read_examples(path, "train") if e.label is not None}
    if not labels:
      raise UsageError("data file %s: no labels found in column %s" % (path, self.label_column))
    if len(labels) == 1:
      raise UsageError("data file %s: every row has label %r in column %s (one class; a "
                       "classifier needs at least two)" % (path, labels.pop(), self.label_column))
    self.labels = sorted(labels)

  def get_labels(self):
    if not self.labels:
      raise UsageError("--labels: no label list (give --labels or a training file to read them "
                       "from)")
    return self.labels

  def read_examples(self, path, split):
    delimiter = self.delimiter or ("," if path.endswith(".csv") else "\t")
    lines = list(read_lines(path))
    rows = csv.reader([text for _, text in lines], delimiter=delimiter)
    columns = None
    for (number, _), row in zip(lines, rows):
      source = "%s:%d" % (path, number)
      if not row or not any(cell.strip() for cell in row):
        continue
      if self.has_header and columns is None:
        columns = {name.strip(): index for index, name in enumerate(row)}
        continue
      text_a = self._cell(row, self.text_column, columns, source)
      text_b = self._cell(row, self.text_b_column, columns, source) if self.text_b_column else None
      label = self._cell(row, self.label_column, columns, source, required=split != "test")
      label = label or None  # an empty cell is no label: allowed in test files, an error elsewhere
      if not text_a.strip():
        raise UsageError("%s: empty text in column %s (expected some text)" %
                         (source, self.text_column))
      yield InputExample("%s-%d" % (split, number), text_a, text_b, label, source)

  def is_blank(self, line):
    # Only lines that are not examples are asked: blank under either default delimiter.
    return any(not any(cell.strip() for row in csv.reader([line], delimiter=delimiter)
                       for cell in row) for delimiter in (self.delimiter or ",", "\t"))

  def _cell(self, row, column, columns, source, required=True):
    if column.isdigit():
      index = int(column)
    elif columns is not None and column in columns:
      index = columns[column]
    else:
      raise UsageError("%s: column %r not found (header: %s)" %
                       (source, column, ", ".join(columns or []) or "none"))
    if index >= len(row):
      if not required:
        return None
      raise UsageError("%s: expected at least %d columns, got %d" % (source, index + 1, len(row)))
    return row[index].strip()


class _TsvProcessor(DataProcessor):
  """Google's GLUE/XNLI files: tab-separated, fields picked by position."""

  skip_header = True
  labels = None

  def get_labels(self):
    return list(self.labels)

  def read_examples(self, path, split):
    for index, (number, line) in enumerate(read_lines(path)):
      if index == 0 and self.skip_header or not line.strip():
        continue
      fields = line.split("\t")
      source = "%s:%d" % (path, number)
      try:
        example = self.parse(fields, split)
      except IndexError:
        raise UsageError("%s: too few tab-separated fields (%d)" % (source, len(fields)))
      if example is not None:
        text_a, text_b, label = example
        yield InputExample("%s-%d" % (split, number), text_a, text_b, label, source)

  def parse(self, fields, split):
    raise NotImplementedError()


class MrpcProcessor(_TsvProcessor):
  name = "mrpc"
  labels = ["0", "1"]

  def parse(self, fields, split):
    return fields[3], fields[4], None if split == "test" else fields[0]


class ColaProcessor(_TsvProcessor):
  name = "cola"
  labels = ["0", "1"]

  def get_examples(self, data_dir, split):
    self.skip_header = split == "test"  # only CoLA's test file has a header
    return super(ColaProcessor, self).get_examples(data_dir, split)

  def parse(self, fields, split):
    if split == "test":
      return fields[1], None, None
    return fields[3], None, fields[1]


class Sst2Processor(_TsvProcessor):
  """GLUE's SST-2: `sentence<TAB>label` with a header; the test file is `index<TAB>sentence`."""

  name = "sst2"
  labels = ["0", "1"]

  def parse(self, fields, split):
    if split == "test":
      return fields[-1], None, None
    return fields[0], None, fields[1]


class MnliProcessor(_TsvProcessor):
  name = "mnli"
  labels = ["contradiction", "entailment", "neutral"]
  split_files = {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"}

  def parse(self, fields, split):
    return fields[8], fields[9], None if split == "test" else fields[-1]


class XnliProcessor(_TsvProcessor):
  """XNLI in one language: train from the machine-translated MultiNLI, dev/test from xnli.*.tsv."""

  name = "xnli"
  language = "zh"
  labels = ["contradiction", "entailment", "neutral"]

  def data_file(self, data_dir, split):
    if split == "train":
      return os.path.join(data_dir, "multinli", "multinli.train.%s.tsv" % self.language)
    return os.path.join(data_dir, "xnli.%s.tsv" % split)

  def parse(self, fields, split):
    if split == "train":
      label = "contradiction" if fields[2] == "contradictory" else fields[2]
      return fields[0], fields[1], label
    if fields[0] != self.language:
      return None
    return fields[6], fields[7], fields[1]


PROCESSORS = {p.name: p for p in (EmotionProcessor, CsvProcessor, MrpcProcessor, ColaProcessor,
                                  Sst2Processor, MnliProcessor, XnliProcessor)}


def get_processor(task_name, **csv_options):
  key = (task_name or "").lower()
  if key not in PROCESSORS:
    raise UsageError("--task_name: unknown task %r (expected one of %s)" %
                     (task_name, ", ".join(sorted(PROCESSORS))))
  return PROCESSORS[key](**csv_options) if key == "csv" else PROCESSORS[key]()


def _clip(text, width=60):
  return text if len(text) <= width else text[:width] + "..."


def _int_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def feature_to_example(feature, teacher_logits=None, has_label=None):
  """has_label: None (the field is left out: every example is labelled), 1, or 0 for a
  transfer-set example (soft loss only; its label_ids is 0 and means nothing)."""
  fields = {"input_ids": _int_feature(feature.input_ids),
            "segment_ids": _int_feature(feature.segment_ids),
            "label_ids": _int_feature([feature.label_id])}
  if teacher_logits is not None:
    fields["teacher_logits"] = _float_feature(teacher_logits)
  if has_label is not None:
    fields["has_label"] = _int_feature([int(has_label)])
  return tf.train.Example(features=tf.train.Features(feature=fields))


def file_fingerprint(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def features_fingerprint(data_file, vocab_file, max_seq_length, do_lower_case, label_list,
                         processor_options, extra=None):
  """Everything that decides the features: the cache is reused only while this is unchanged."""
  return {"format": FEATURE_FORMAT_VERSION, "data_file": os.path.abspath(data_file),
          "data_sha256": file_fingerprint(data_file), "vocab_sha256": file_fingerprint(vocab_file),
          "max_seq_length": max_seq_length, "do_lower_case": bool(do_lower_case),
          "labels": list(label_list), "processor": processor_options, "extra": extra}


def cached_record_info(record_file, fingerprint):
  """The sidecar info of a cached TFRecord when its fingerprint matches, else None."""
  info_file = record_file + ".json"
  if not (os.path.isfile(record_file) and os.path.isfile(info_file)):
    return None
  try:
    with open(info_file, encoding="utf-8") as f:
      info = json.load(f)
  except ValueError:
    return None
  if not isinstance(info, dict) or info.get("fingerprint") != fingerprint:
    return None
  damage = record_damage(record_file, info)
  if damage:
    # Its sources are unchanged (the fingerprint matches): rebuilding gives the intended file.
    print("%s: %s; rebuilding it from its unchanged sources" % (record_file, damage), flush=True)
    return None
  return info


def record_damage(record_file, info):
  """Why a cached TFRecord cannot be what its sidecar describes (truncated, cut, corrupt), or None.

  Sidecars written since record_bytes was added are checked by size; older ones by reading every
  record (its length and checksums) and counting.
  """
  size = os.path.getsize(record_file)
  if "record_bytes" in info:
    if size != info["record_bytes"]:
      return "%d bytes, %d expected (truncated or overwritten)" % (size, info["record_bytes"])
    return None
  count = 0
  try:
    for _ in tf.compat.v1.io.tf_record_iterator(record_file):
      count += 1
  except (tf.errors.OpError, OSError) as e:
    return "damaged after %d records (%s)" % (count, " ".join(str(getattr(e, "message", e))
                                                               .split())[:200])
  if count != info.get("num_examples"):
    return "%d records, %s expected" % (count, info.get("num_examples"))
  return None


def remove_orphaned_temp_files(record_file):
  """Removes `record_file.tmp-<pid>[.json]` left by a writer that was killed (its pid is gone)."""
  for path in glob.glob(glob.escape(record_file) + ".tmp-*"):
    pid = path[len(record_file) + len(".tmp-"):].split(".")[0]
    if pid.isdigit() and not process_alive(int(pid)):
      try:
        os.remove(path)
      except OSError:
        pass  # another process cleaned it first


def write_records(record_file, examples_iter, fingerprint, stats, has_teacher_logits=False,
                  has_label=False):
  """Writes tf.Examples to record_file atomically, with a sidecar JSON of fingerprint and stats.

  has_teacher_logits, has_label: whether the records hold those optional fields; recorded in the
  sidecar, which is what input_fn_for_record reads them from.
  """
  directory = os.path.dirname(os.path.abspath(record_file))
  tf.io.gfile.makedirs(directory)
  remove_orphaned_temp_files(record_file)
  temp_file = record_file + ".tmp-%d" % os.getpid()
  count = 0
  try:
    with tf.io.TFRecordWriter(temp_file) as writer:
      for example in examples_iter:
        writer.write(example.SerializeToString())
        count += 1
    info = dict(stats, num_examples=count, fingerprint=fingerprint,
                record_bytes=os.path.getsize(temp_file),
                has_teacher_logits=bool(has_teacher_logits), has_label=bool(has_label))
    with open(temp_file + ".json", "w", encoding="utf-8") as f:
      json.dump(info, f, indent=1, ensure_ascii=False)
  except BaseException:
    # A failure part-way (a bad example, a full disk) leaves neither a partial record file nor
    # a changed cache: the previous record_file, if any, is untouched.
    for path in (temp_file, temp_file + ".json"):
      if os.path.exists(path):
        os.remove(path)
    raise
  os.replace(temp_file, record_file)
  os.replace(temp_file + ".json", record_file + ".json")
  return info


# -- transfer set ----------------------------------------------------------------------------
# Unlabelled examples taught by the teacher's soft targets alone (distillation's --transfer_file
# and --augment_copies), mixed into the training records with has_label = 0.

TRANSFER_FORMATS = ("text", "task")


def read_transfer_examples(path, transfer_format, processor, pairs=False):
  """The examples of a transfer file, without labels.

  transfer_format: "text": one example per line (blank lines skipped), the whole line is the
  text, or `text_a<TAB>text_b` when pairs; "task": the task's own training-file format (as its
  train file: header, columns), whose labels are read and dropped.
  Returns InputExamples with label None.
  """
  if transfer_format == "task":
    examples = [InputExample("transfer-%d" % i, e.text_a, e.text_b, None, e.source)
                for i, e in enumerate(processor.read_examples(path, "train"))]
  elif transfer_format == "text":
    examples = []
    for number, line in read_lines(path):
      if not line.strip():
        continue
      text_a, text_b = line.split("\t", 1) if pairs and "\t" in line else (line, None)
      examples.append(InputExample("transfer-%d" % number, text_a.strip(),
                                   text_b.strip() if text_b else None,
                                   None, "%s:%d" % (path, number)))
  else:
    raise UsageError("--transfer_format: expected one of %s, got %r" %
                     (", ".join(TRANSFER_FORMATS), transfer_format))
  if not examples:
    raise UsageError("transfer file %s: no examples found" % path)
  return examples


class _Serialized(object):
  """An already serialized tf.Example, for write_records."""

  __slots__ = ("data",)

  def __init__(self, data):
    self.data = data

  def SerializeToString(self):  # pylint: disable=invalid-name
    return self.data


def read_serialized_records(record_file, chunk=4096):
  """The serialized records of a TFRecord file, in order (in a throwaway graph)."""
  records = []
  with tf.Graph().as_default() as graph:
    batch = tf.compat.v1.data.make_one_shot_iterator(
        tf.data.TFRecordDataset(record_file).batch(chunk)).get_next()
    graph.finalize()
    with tf.compat.v1.Session(graph=graph) as session:
      while True:
        try:
          records.extend(session.run(batch))
        except tf.errors.OutOfRangeError:
          return records


def write_transfer_records(record_file, labelled_record, transfer_features, fingerprint, seed):
  """The labelled records (has_label 1) and the transfer features (has_label 0), shuffled together.

  The order is a seeded permutation, so input_fn's shuffle buffer mixes both kinds from the first
  step even when the transfer set is much larger than the buffer.
  Returns the sidecar info: num_examples, num_labelled, num_transfer.
  """
  records = []
  for data in read_serialized_records(labelled_record):
    example = tf.train.Example.FromString(data)
    example.features.feature["has_label"].int64_list.value[:] = [1]
    records.append(example.SerializeToString())
  num_labelled = len(records)
  records.extend(feature_to_example(f, has_label=0).SerializeToString()
                 for f in transfer_features)
  random.Random(seed).shuffle(records)
  return write_records(record_file, (_Serialized(r) for r in records), fingerprint,
                       {"num_labelled": num_labelled,
                        "num_transfer": len(records) - num_labelled,
                        "num_transfer_truncated": sum(f.truncated for f in transfer_features)},
                       has_label=True)


def parse_spec(num_labels=None, with_teacher_logits=False, with_has_label=False, num_teachers=1):
  spec = {"input_ids": tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
          "segment_ids": tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
          "label_ids": tf.io.FixedLenFeature([], tf.int64)}
  if with_teacher_logits:
    spec["teacher_logits"] = tf.io.FixedLenFeature([num_teachers * num_labels], tf.float32)
  if with_has_label:
    spec["has_label"] = tf.io.FixedLenFeature([], tf.int64, default_value=1)
  return spec


def default_bucket_boundaries(max_seq_length):
  """Sequence-length bucket upper bounds: fine where reviews are common, coarse beyond."""
  bounds = [b for b in (16, 32, 48, 64, 96, 128, 192, 256, 384, 512) if b < max_seq_length]
  return bounds + [max_seq_length]


def input_fn_for_record(record_file, info, is_training, max_seq_length, **kwargs):
  """input_fn_builder for a record file written by write_records: its optional fields (teacher
  logits, has_label) as its sidecar info records them."""
  return input_fn_builder(record_file, is_training, max_seq_length,
                          with_teacher_logits=info["has_teacher_logits"],
                          with_has_label=info["has_label"],
                          num_teachers=info.get("num_teachers", 1), **kwargs)


def input_fn_builder(input_files, is_training, max_seq_length, padding="dynamic",
                     num_labels=None, with_teacher_logits=False, bucket_boundaries=None,
                     shuffle_buffer=20000, seed=None, num_epochs=None, with_has_label=False,
                     num_teachers=1):
  """Returns input_fn(params) → tf.data.Dataset of (features dict, label_ids) batches.

  Batches hold int32 `input_ids`, `input_mask`, `segment_ids` [batch_size, seq_length] and
  `label_ids` [batch_size] (and float32 `teacher_logits` [batch_size, num_teachers *
  num_labels] when cached, each teacher's logits one after another;
  int32 `has_label` [batch_size], 0 for transfer-set examples, with with_has_label).
  padding: "fixed" pads to max_seq_length; "dynamic" pads each batch to its longest example,
  and when training groups examples into length buckets, padded to the bucket's bound, so step
  shapes repeat (XLA compiles once per bucket). Training shuffles within and across buckets and
  flushes every bucket at the end of each epoch: every example is seen exactly once per epoch.
  """
  if padding not in ("fixed", "dynamic"):
    raise UsageError("--padding: expected fixed or dynamic, got %r" % padding)
  spec = parse_spec(num_labels, with_teacher_logits, with_has_label, num_teachers)

  def decode(record):
    example = tf.io.parse_single_example(record, spec)
    features = {name: tf.cast(example[name], tf.int32)
                for name in ("input_ids", "segment_ids", "label_ids")}
    features["input_mask"] = tf.ones_like(features["input_ids"])
    if with_teacher_logits:
      features["teacher_logits"] = example["teacher_logits"]
    if with_has_label:
      features["has_label"] = tf.cast(example["has_label"], tf.int32)
    return features

  def input_fn(params):
    batch_size = params["batch_size"]
    dataset = tf.data.TFRecordDataset(input_files)
    if is_training:
      dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    padded_shapes = {name: [None] for name in ("input_ids", "segment_ids", "input_mask")}
    padded_shapes["label_ids"] = []
    if with_teacher_logits:
      padded_shapes["teacher_logits"] = [num_teachers * num_labels]
    if with_has_label:
      padded_shapes["has_label"] = []
    if padding == "fixed":
      padded_shapes.update({name: [max_seq_length]
                            for name in ("input_ids", "segment_ids", "input_mask")})
      dataset = dataset.padded_batch(batch_size, padded_shapes)
    elif is_training:
      bounds = bucket_boundaries or default_bucket_boundaries(max_seq_length)
      # bucket_by_sequence_length pads to boundary - 1 and needs every length below the last.
      dataset = dataset.bucket_by_sequence_length(
          lambda f: tf.shape(f["input_ids"])[0], [b + 1 for b in bounds],
          [batch_size] * (len(bounds) + 1), padded_shapes=padded_shapes,
          pad_to_bucket_boundary=True)
    else:
      dataset = dataset.padded_batch(batch_size, padded_shapes)
    if is_training:
      dataset = dataset.repeat(num_epochs)
    dataset = dataset.map(lambda f: (f, f["label_ids"]))
    return dataset.prefetch(tf.data.AUTOTUNE)

  return input_fn
