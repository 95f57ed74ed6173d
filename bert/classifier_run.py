"""The train → eval → predict → export sequence shared by both entry points.

`run_classifier.py` runs ClassifierRun as it is; `run_classifier_distill.py` runs its subclass
DistillRun (distill_run.py), which adds the teacher and Hinton's loss. Data flows one way:
text → features (TFRecord) → model_fn → trainer → export.
"""

import math
import os

import numpy as np
import tensorflow as tf

from bert import (checkpoint_init, classifier, classifier_data, classifier_flags, collapse, export,
                  modeling, tokenization)
from bert.errors import UsageError
from bert.training import Trainer, log

REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[UNK]")


def check_vocab(vocab, vocab_file, bert_config):
  for token in REQUIRED_TOKENS:
    if token not in vocab:
      raise UsageError("--vocab_file %s: has no %s token (a BERT vocab needs %s)" %
                       (vocab_file, token, " ".join(REQUIRED_TOKENS)))
  if len(vocab) != bert_config.vocab_size:
    raise UsageError("--vocab_file %s: has %d tokens but --bert_config_file says vocab_size %d" %
                     (vocab_file, len(vocab), bert_config.vocab_size))


class ClassifierRun(object):
  """One invocation: validated settings, then the requested do_* steps in order."""

  # Whether the training loss is the hard-label loss, whose constant-prediction level is known.
  checks_constant_loss = True

  def __init__(self, flag_values):
    self.flags = flag_values
    self.validate_flags()
    fv = flag_values
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
        model_signature=self.model_signature(), use_xla=fv.use_xla)
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
    """What must match for a checkpoint in output_dir to be resumed or evaluated."""
    return {"bert_config": self.bert_config.architecture(), "labels": self.label_list}

  @property
  def train_temperature(self):
    """Temperature of the hard-label loss and of the export (teacher trained with --do_distill)."""
    return self.flags.temperature if self.flags.do_distill else 1.0

  # -- features --------------------------------------------------------------------------------

  def features(self, split):
    """The split's TFRecord in output_dir, rebuilt only when its inputs changed. Returns (path, info)."""
    fv = self.flags
    data_file = self.processor.data_file(fv.data_dir, split)
    if not os.path.isfile(data_file):
      raise UsageError("data file %s: not found (needed by --do_%s)" %
                       (data_file, {"train": "train", "dev": "eval", "test": "predict"}[split]))
    fingerprint = classifier_data.features_fingerprint(
        data_file, fv.vocab_file, fv.max_seq_length, fv.do_lower_case, self.label_list,
        self.processor.options())
    record_file = os.path.join(fv.output_dir, "%s.tf_record" % split)
    info = classifier_data.cached_record_info(record_file, fingerprint)
    if info:
      log("Reusing %s (%d examples)" % (record_file, info["num_examples"]))
      return record_file, info
    examples = self.processor.get_examples(fv.data_dir, split)
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
        precision=fv.precision, init_layer_map=self.layer_map,
        loss_builder=self.loss_builder(), adam_bias_correction=fv.adam_bias_correction)

  def model_fn_for_run(self, features, labels, mode, params):
    return self.model_fn()(features, labels, mode, params)

  # -- steps -----------------------------------------------------------------------------------

  def run(self):
    fv = self.flags
    # Refuse before anything is written to output_dir: features, checkpoints or results.
    self.trainer._check_signature()
    if not fv.do_train and not self.trainer.latest_checkpoint():
      raise UsageError("--output_dir %s: no checkpoint to %s (train first with --do_train)" %
                       (fv.output_dir, "evaluate" if fv.do_eval else
                        "predict with" if fv.do_predict else "export"))
    if fv.do_train and fv.init_checkpoint:
      self.check_init_checkpoint()
    if self.flags.do_train:
      self.train()
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

  def predict(self):
    fv = self.flags
    record_file, info = self.features("test")
    path = os.path.join(fv.output_dir, "test_results.tsv")
    rows = 0
    with open(path + ".tmp", "w", encoding="utf-8") as writer:
      for prediction in self.trainer.predict(self.input_fn(record_file, False),
                                             fv.predict_batch_size):
        writer.write("\t".join("%.8f" % p for p in prediction["probabilities"]) + "\n")
        rows += 1
    if rows != info["num_examples"]:
      raise UsageError("predicted %d rows for %d examples" % (rows, info["num_examples"]))
    os.replace(path + ".tmp", path)
    log("Wrote %s (%d rows)" % (path, rows))

  def export(self):
    fv = self.flags
    checkpoint = self.trainer.latest_checkpoint()
    if not checkpoint:
      raise UsageError("--output_dir %s: no checkpoint to export (train first with --do_train)" %
                       fv.output_dir)
    self.trainer._check_signature()
    vocab = self.tokenizer.vocab
    warmup = export.default_warmup_inputs(fv.max_seq_length, vocab["[CLS]"], vocab["[SEP]"],
                                          vocab["[UNK]"])
    return export.export_saved_model(
        fv.export_dir, checkpoint, self.bert_config, self.label_list, fv.vocab_file,
        fv.do_lower_case, fv.max_seq_length, temperature=self.train_temperature,
        extra_info={"task_name": fv.task_name}, warmup_inputs=warmup)
