"""The train → eval → predict → export sequence shared by both entry points.

`run_classifier.py` runs ClassifierRun as it is; `run_classifier_distill.py` runs its subclass
DistillRun (distill_run.py), which adds the teacher and Hinton's loss. Data flows one way:
text → features (TFRecord) → model_fn → trainer → export.
"""

import collections
import hashlib
import math
import os

import numpy as np
import tensorflow as tf

from bert import (checkpoint_init, classifier, classifier_data, classifier_flags, collapse,
                  distribute, export, hardware, modeling, run_lock, tokenization)
from bert.errors import UsageError
from bert.training import Trainer, log

REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[UNK]")


def vocab_tokens(vocab_file):
  """The vocab's tokens in id order (one per line, surrounding whitespace stripped)."""
  with open(vocab_file, encoding="utf-8") as f:
    return [line.strip() for line in f]


def vocab_fingerprint(vocab_file):
  """sha256 of the vocab's token list: the same tokens in the same order, whatever the line ends."""
  text = "\n".join(vocab_tokens(vocab_file))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_vocab(vocab, vocab_file, bert_config):
  tokens = vocab_tokens(vocab_file)
  if len(vocab) != len(tokens):
    lines = collections.defaultdict(list)
    for number, token in enumerate(tokens, start=1):
      lines[token].append(number)
    duplicates = [(token, numbers) for token, numbers in lines.items() if len(numbers) > 1]
    shown = ", ".join("%r (lines %s)" % (token, ", ".join(map(str, numbers[:4])))
                      for token, numbers in duplicates[:5])
    raise UsageError("--vocab_file %s: has %d lines but %d distinct tokens: %d duplicated, %s%s "
                     "(each token must appear once: its line number is its id)" %
                     (vocab_file, len(tokens), len(vocab), len(duplicates), shown,
                      ", ..." if len(duplicates) > 5 else ""))
  for token in REQUIRED_TOKENS:
    if token not in vocab:
      raise UsageError("--vocab_file %s: has no %s token (a BERT vocab needs %s)" %
                       (vocab_file, token, " ".join(REQUIRED_TOKENS)))
  if len(vocab) != bert_config.vocab_size:
    raise UsageError("--vocab_file %s: has %d tokens but --bert_config_file says vocab_size %d" %
                     (vocab_file, len(vocab), bert_config.vocab_size))


def check_classes(examples, data_file):
  """A classifier learns nothing from one class: refuse training data holding only one."""
  classes = sorted({example.label for example in examples if example.label is not None})
  if len(classes) == 1:
    raise UsageError("data file %s: every training example has label %r (one class; a "
                     "classifier needs examples of at least two)" % (data_file, classes[0]))


def visible_gpu_capabilities():
  """(major, minor) compute capability of each GPU TensorFlow sees; empty on a CPU."""
  capabilities = []
  for gpu in tf.config.list_physical_devices("GPU"):
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    if capability:
      capabilities.append(tuple(capability))
  return capabilities


class ClassifierRun(object):
  """One invocation: validated settings, then the requested do_* steps in order."""

  # Whether the training loss is the hard-label loss, whose constant-prediction level is known.
  checks_constant_loss = True

  def __init__(self, flag_values):
    self.flags = flag_values
    self.validate_flags()
    fv = flag_values
    # First: mirrored on a CPU-only machine splits the CPU before TensorFlow starts its devices.
    self.distribution = distribute.Distribution.create(fv.distribution, fv.num_devices)
    if fv.train_batch_size % self.distribution.num_replicas:
      raise UsageError("--train_batch_size %d: must be a multiple of the %d replicas (it is the "
                       "global batch, split over them)" %
                       (fv.train_batch_size, self.distribution.num_replicas))
    # A non-chief worker keeps its features, lock and final weights apart; it reads the
    # checkpoints of output_dir (shared by all workers) and writes nothing there.
    self.work_dir = fv.output_dir if self.distribution.is_chief else os.path.join(
        fv.output_dir, "worker-%d" % self.distribution.worker_index)
    self.bert_config = modeling.BertConfig.from_json_file(fv.bert_config_file)
    if fv.max_seq_length > self.bert_config.max_position_embeddings:
      raise UsageError("--max_seq_length %d: larger than max_position_embeddings %d of %s" %
                       (fv.max_seq_length, self.bert_config.max_position_embeddings,
                        fv.bert_config_file))
    self.tokenizer = tokenization.FullTokenizer(fv.vocab_file, fv.do_lower_case)
    check_vocab(self.tokenizer.vocab, fv.vocab_file, self.bert_config)
    tokenization.validate_case_matches_checkpoint(fv.do_lower_case, fv.init_checkpoint or "")
    self.processor = classifier_data.get_processor(
        fv.task_name, text_column=fv.text_column, text_b_column=fv.text_b_column,
        label_column=fv.label_column, delimiter=fv.csv_delimiter, has_header=fv.csv_header,
        labels=fv.labels.split(",") if fv.labels else None)
    if fv.data_dir:
      self.processor.prepare(fv.data_dir)
    self.label_list = self.processor.get_labels()
    if fv.do_export:
      export.check_writable(fv.export_dir)
    self.trainer = Trainer(
        self.model_fn_for_run, fv.output_dir, params={"seed": fv.seed},
        save_checkpoints_steps=fv.save_checkpoints_steps,
        keep_checkpoint_max=fv.keep_checkpoint_max, log_every_n_steps=fv.log_every_n_steps,
        model_signature=self.model_signature(), use_xla=fv.use_xla,
        distribution=self.distribution, worker_dir=self.work_dir)
    self.precision, self.precision_reason = hardware.choose_precision(
        fv.precision, hardware.cpu_flags(),
        visible_gpu_capabilities() if fv.precision == "auto" else ())
    self.layer_map = checkpoint_init.parse_layer_map(fv.init_layer_map,
                                                     self.bert_config.num_hidden_layers)
    if self.layer_map and not fv.init_checkpoint:
      raise UsageError("--init_layer_map: needs --init_checkpoint to take the layers from")
    self.num_train_steps = 1
    self.num_warmup_steps = 0

  # -- settings --------------------------------------------------------------------------------

  def validate_flags(self):
    classifier_flags.check_flags(self.flags)

  def model_signature(self):
    """What must match for a checkpoint in output_dir to be resumed or evaluated.

    An output_dir of an older version recorded only bert_config and labels: the keys it lacks are
    unknown there, accepted and recorded (Trainer.check_output_dir).
    """
    fv = self.flags
    return {"bert_config": self.bert_config.architecture(), "labels": self.label_list,
            "vocab_sha256": vocab_fingerprint(fv.vocab_file),
            "do_lower_case": bool(fv.do_lower_case), "max_seq_length": int(fv.max_seq_length)}

  @property
  def train_temperature(self):
    """Temperature of the hard-label loss and of the export (teacher trained with --do_distill)."""
    return self.flags.temperature if self.flags.do_distill else 1.0

  # -- features --------------------------------------------------------------------------------

  def features(self, split):
    """The split's TFRecord in output_dir, rebuilt only if its inputs changed.

    Returns (path, info).
    """
    fv = self.flags
    data_file = self.processor.data_file(fv.data_dir, split)
    if not os.path.isfile(data_file):
      raise UsageError("data file %s: not found (needed by --do_%s)" %
                       (data_file, {"train": "train", "dev": "eval", "test": "predict"}[split]))
    fingerprint = classifier_data.features_fingerprint(
        data_file, fv.vocab_file, fv.max_seq_length, fv.do_lower_case, self.label_list,
        self.processor.options())
    record_file = os.path.join(self.work_dir, "%s.tf_record" % split)
    info = classifier_data.cached_record_info(record_file, fingerprint)
    if info:
      log("Reusing %s (%d examples)" % (record_file, info["num_examples"]))
      return record_file, info
    examples = self.processor.get_examples(fv.data_dir, split)
    if split == "train":
      check_classes(examples, data_file)
    features = classifier_data.convert_examples_to_features(
        examples, self.label_list, fv.max_seq_length, self.tokenizer)
    truncated = sum(f.truncated for f in features)
    lengths = [len(f.input_ids) for f in features]
    info = classifier_data.write_records(
        record_file, (classifier_data.feature_to_example(f) for f in features), fingerprint,
        {"num_truncated": truncated, "median_length": float(np.median(lengths)),
         "max_length": max(lengths)})
    log("Wrote %s: %d examples, median length %d tokens, %d truncated to max_seq_length %d" %
        (record_file, info["num_examples"], info["median_length"], truncated, fv.max_seq_length))
    return record_file, info

  def input_fn(self, record_file, is_training):
    fv = self.flags
    return classifier_data.input_fn_builder(
        record_file, is_training, fv.max_seq_length, padding=fv.padding,
        num_labels=len(self.label_list), seed=fv.seed)

  # -- model -----------------------------------------------------------------------------------

  def loss_builder(self):
    return classifier.hard_label_loss(self.train_temperature)

  def model_fn(self):
    fv = self.flags
    return classifier.model_fn_builder(
        self.bert_config, self.label_list, init_checkpoint=fv.init_checkpoint,
        learning_rate=fv.learning_rate, num_train_steps=self.num_train_steps,
        num_warmup_steps=self.num_warmup_steps, temperature=self.train_temperature,
        precision=self.precision, init_layer_map=self.layer_map,
        loss_builder=self.loss_builder(), adam_bias_correction=fv.adam_bias_correction)

  def model_fn_for_run(self, features, labels, mode, params):
    return self.model_fn()(features, labels, mode, params)

  # -- steps -----------------------------------------------------------------------------------

  def run(self):
    fv = self.flags
    # Refuse before anything is written to output_dir: features, checkpoints or results.
    self.trainer.check_output_dir()
    if not fv.do_train and not self.trainer.latest_checkpoint():
      raise UsageError("--output_dir %s: no checkpoint to %s (train first with --do_train)" %
                       (fv.output_dir, "evaluate" if fv.do_eval else
                        "predict with" if fv.do_predict else "export"))
    if fv.do_train and fv.init_checkpoint:
      self.check_init_checkpoint()
    # One run at a time in output_dir, for the whole run.
    with run_lock.RunLock(self.work_dir) as lock:
      if lock.taken_over:
        log("Took over %s from pid %d, which ended without releasing it" %
            (lock.path, lock.taken_over))
      # Again under the lock (another run may have just written it); an older version's
      # signature gets the keys it lacked once a checkpoint exists.
      self.trainer.check_output_dir(
          write=self.distribution.is_chief and bool(self.trainer.latest_checkpoint()))
      self.run_steps()

  def run_steps(self):
    """The requested do_* steps, in order (run() holds output_dir's lock)."""
    if self.flags.do_train:
      self.train()
    if not self.distribution.is_chief:
      log("Worker %d is not the chief: eval, predict and export are left to worker 0" %
          self.distribution.worker_index)
      return
    if self.flags.do_eval:
      self.evaluate()
    if self.flags.do_predict:
      self.predict()
    if self.flags.do_export:
      self.export()

  def check_init_checkpoint(self):
    """--init_checkpoint against this model's variables (names, shapes, --init_layer_map), in a
    throwaway graph: the training graph would find a mismatch only after building features."""
    with tf.Graph().as_default():
      ids = tf.compat.v1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(self.bert_config, False, ids, ids, ids, len(self.label_list))
      checkpoint_init.check_init_checkpoint(self.flags.init_checkpoint,
                                            tf.compat.v1.trainable_variables(), self.layer_map)

  def train(self):
    fv = self.flags
    record_file, info = self.train_features()
    if fv.num_train_steps > 0:
      self.num_train_steps = fv.num_train_steps
    else:
      self.num_train_steps = max(1, int(math.ceil(
          info["num_examples"] * fv.num_train_epochs / fv.train_batch_size)))
    self.num_warmup_steps = int(self.num_train_steps * fv.warmup_proportion)
    log("Training %d steps (batch %d, %d examples, %d warmup steps)" %
        (self.num_train_steps, fv.train_batch_size, info["num_examples"], self.num_warmup_steps))
    log("Compute precision %s (%s); weights, checkpoints and exports stay fp32" %
        (self.precision, self.precision_reason))
    log(self.distribution.describe(fv.train_batch_size))
    self.trainer.train(self.input_fn(record_file, True), self.num_train_steps,
                       fv.train_batch_size)
    if self.checks_constant_loss:
      warning = collapse.constant_loss_warning(self.trainer.train_losses, len(self.label_list),
                                               self.train_temperature, fv.learning_rate)
      if warning:
        log(warning)

  def train_features(self):
    return self.features("train")

  def eval_features(self):
    return self.features("dev")

  def evaluate(self):
    record_file, _ = self.eval_features()
    metrics = self.trainer.evaluate(self.input_fn(record_file, False), self.flags.eval_batch_size)
    log("***** Eval results (%s) *****" % os.path.join(self.flags.output_dir, "eval_results.txt"))
    for key in sorted(metrics):
      log("  %s = %s" % (key, metrics[key]))
    return metrics

  def test_rows(self):
    """Per line of the test file: True (an example: its prediction), False (blank: a row of
    nan, so rows stay aligned with lines) or None (a header or a line the task skips: no row)."""
    fv = self.flags
    data_file = self.processor.data_file(fv.data_dir, "test")
    example_lines = {int(example.source.rsplit(":", 1)[1])
                     for example in self.processor.get_examples(fv.data_dir, "test")}
    return [True if number in example_lines else False if self.processor.is_blank(text) else None
            for number, text in classifier_data.read_lines(data_file)]

  def predict(self):
    fv = self.flags
    record_file, info = self.features("test")
    layout = self.test_rows()
    if layout.count(True) != info["num_examples"]:
      raise UsageError("%s: %d examples, but %s holds %d: delete it to rebuild the cache" %
                       (self.processor.data_file(fv.data_dir, "test"), layout.count(True),
                        record_file, info["num_examples"]))
    path = os.path.join(fv.output_dir, "test_results.tsv")
    blank_row = "\t".join(["nan"] * len(self.label_list)) + "\n"
    predictions = self.trainer.predict(self.input_fn(record_file, False), fv.predict_batch_size)
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

  def export(self):
    fv = self.flags
    checkpoint = self.trainer.latest_checkpoint()
    if not checkpoint:
      raise UsageError("--output_dir %s: no checkpoint to export (train first with --do_train)" %
                       fv.output_dir)
    self.trainer.check_output_dir()
    vocab = self.tokenizer.vocab
    warmup = export.default_warmup_inputs(fv.max_seq_length, vocab["[CLS]"], vocab["[SEP]"],
                                          vocab["[UNK]"])
    return export.export_saved_model(
        fv.export_dir, checkpoint, self.bert_config, self.label_list, fv.vocab_file,
        fv.do_lower_case, fv.max_seq_length, temperature=self.train_temperature,
        extra_info={"task_name": fv.task_name}, warmup_inputs=warmup)
