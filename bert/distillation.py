"""Knowledge distillation: Hinton's loss; the frozen teacher SavedModel in the student's graph.

The teacher is an export of run_classifier.py. Its variables are folded into constants and its
graph imported under `teacher/`, wired to the student's own input tensors, so both see the same
batch in one session.run and nothing of the teacher is a variable: it is never trained, never
saved in a student checkpoint, and never exported with the student.
"""

import os

import numpy as np
import tensorflow as tf

from bert import classifier_data, export, tokenization
from bert.loaded_export import LoadedExport
from bert.errors import UsageError
from bert.training import log, session_config

tf1 = tf.compat.v1

TEACHER_SCOPE = "teacher"
# Below this dev accuracy the teacher is most likely untrained or mismatched with the data.
MIN_TEACHER_ACCURACY = 0.6


def kd_loss(student_logits, teacher_logits, label_ids, temperature, alpha, has_label=None,
            soft_loss="ce"):
  """Hinton's distillation loss per example.

  L = (1-α)·CE(y, softmax(z_s)) + α·T²·CE(softmax(z_t/T), softmax(z_s/T)); the teacher side is
  under stop_gradient. T² keeps the soft term's gradients on the scale of the hard term's.
  soft_loss "mse" replaces the soft term by mean_k (z_s,k − z_t,k)², the logits matched directly
  (Ba & Caruana 2014; Tang et al. 2019), where temperature plays no part.
  Transfer-set examples (has_label 0) have no label: they get the soft term alone (α=1).

  Args:
    student_logits, teacher_logits: float32 [batch_size, num_labels].
    label_ids: int32 [batch_size].
    has_label: optional int or float [batch_size] of 1 (labelled) and 0 (transfer set); None:
      every example is labelled.
    soft_loss: "ce" or "mse".
  Returns:
    (loss, hard_loss, soft_loss), each float32 [batch_size]; loss = (1-α)·hard + α·soft, or with
    has_label h: h·((1-α)·hard + α·soft) + (1-h)·soft, and hard_loss is 0 where h is 0.
  """
  num_labels = tf.shape(student_logits)[-1]
  teacher_logits = tf.stop_gradient(tf.cast(teacher_logits, tf.float32))
  one_hot = tf.one_hot(label_ids, depth=num_labels, dtype=tf.float32)
  hard = -tf.reduce_sum(one_hot * tf.nn.log_softmax(student_logits, axis=-1), axis=-1)
  if soft_loss == "mse":
    soft = tf.reduce_mean(tf.math.squared_difference(student_logits, teacher_logits), axis=-1)
  else:
    soft_targets = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    soft = -tf.reduce_sum(soft_targets * tf.nn.log_softmax(student_logits / temperature, axis=-1),
                          axis=-1) * (temperature ** 2)
  if has_label is None:
    return (1.0 - alpha) * hard + alpha * soft, hard, soft
  labelled = tf.cast(has_label, tf.float32)
  hard = labelled * hard
  return (1.0 - alpha) * hard + (1.0 - (1.0 - alpha) * labelled) * soft, hard, soft


def agreement_and_kl(teacher_logits, student_logits):
  """Fraction of equal argmax, and mean KL(teacher‖student) at T=1, from numpy logits."""

  def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

  log_t, log_s = log_softmax(teacher_logits), log_softmax(student_logits)
  kl = np.sum(np.exp(log_t) * (log_t - log_s), axis=-1)
  agreement = np.mean(np.argmax(teacher_logits, -1) == np.argmax(student_logits, -1))
  return float(agreement), float(np.mean(kl))


class Teacher(object):
  """A frozen teacher export: its recorded settings and a constant-only GraphDef."""

  def __init__(self, path, weight=1.0):
    self.version_dir = export.resolve_version_dir(path)
    self.info = export.read_export_info(self.version_dir)
    # The temperature the teacher was trained at (--do_distill): its export serves logits / T.
    self.training_temperature = float(self.info.get("temperature", 1.0))
    self.labels = list(self.info["labels"])
    self.weight = float(weight)  # in an ensemble (several --teacher_model)
    self._frozen = None

  @classmethod
  def from_flag(cls, text):
    """The teachers of --teacher_model PATH[:WEIGHT],... (one or more), in order."""
    from bert import distill_config  # pylint: disable=import-outside-toplevel
    return [cls(path, weight) for path, weight in distill_config.parse_teacher_models(text)]

  def intermediate_names(self):
    """{"embedding", "hidden", "attention_scores", "attention_probs", "pooled"} → tensor name(s)
    (export.intermediate_tensor_names), or None for an export made before they were recorded."""
    return self.info.get(export.INTERMEDIATE_KEY)

  def intermediate_name(self, key):
    """The tensor name of "hidden/<i>", "attention_scores/<i>", "attention_probs/<i>",
    "embedding" or "pooled"; a one-line UsageError if this export does not record it."""
    names = self.intermediate_names()
    if not names:
      raise UsageError("--teacher_model %s: exported without its intermediate tensors (an older "
                       "export): intermediate matches need them; re-export the teacher with "
                       "run_classifier.py --do_export, or distil from logits only" %
                       self.version_dir)
    feature, _, layer = key.partition("/")
    value = names[feature]
    if layer:
      if not 0 <= int(layer) < len(value):
        raise UsageError("--teacher_model %s: has no layer %s (%d layers)" %
                         (self.version_dir, layer, len(value)))
      value = value[int(layer)]
    return value

  def check_compatible(self, label_list, vocab_file, do_lower_case, max_seq_length):
    """One-line UsageError for each way the teacher cannot teach this student."""
    where = "--teacher_model %s" % self.version_dir
    if self.labels != list(label_list):
      raise UsageError("%s: label list [%s] differs from the task's [%s] (same labels in the same "
                       "order are needed)" % (where, ", ".join(self.labels), ", ".join(label_list)))
    teacher_vocab = list(tokenization.load_vocab(self.info["vocab_file"]))
    student_vocab = list(tokenization.load_vocab(vocab_file))
    if teacher_vocab != student_vocab:
      diff = next((i for i, (a, b) in enumerate(zip(teacher_vocab, student_vocab)) if a != b),
                  min(len(teacher_vocab), len(student_vocab)))
      raise UsageError("%s: vocab differs from --vocab_file %s (%d vs %d tokens, first difference "
                       "at line %d)" % (where, vocab_file, len(teacher_vocab), len(student_vocab),
                                        diff + 1))
    if bool(self.info["do_lower_case"]) != bool(do_lower_case):
      raise UsageError("%s: trained with do_lower_case=%s but --do_lower_case=%s" %
                       (where, self.info["do_lower_case"], do_lower_case))
    if int(self.info["max_seq_length"]) < max_seq_length:
      raise UsageError("%s: exported with max_seq_length %d, below --max_seq_length %d" %
                       (where, self.info["max_seq_length"], max_seq_length))

  def fingerprint(self):
    """Identifies the teacher's weights, for the cached-logit features."""
    return {"teacher": os.path.abspath(self.version_dir), "logits": "raw (times the export's T)",
            "graph_sha256": classifier_data.file_fingerprint(
                os.path.join(self.version_dir, "saved_model.pb")),
            "variables_sha256": classifier_data.file_fingerprint(
                os.path.join(self.version_dir, "variables", "variables.index"))}

  def frozen_graph(self):
    """(GraphDef with variables folded into constants, {input name: tensor name}, logits name).

    The GraphDef keeps the recorded intermediate tensors (intermediate_names) too: their nodes
    are output nodes of the freezing, so pruning to the logits does not drop them.
    """
    if self._frozen is None:
      names = self.intermediate_names() or {}
      extra = [name for value in names.values()
               for name in (value if isinstance(value, list) else [value])]
      # Freezing to serving_default's logits (and the inner tensors) drops the text signature.
      loaded = LoadedExport(self.version_dir, flag="--teacher_model")
      try:
        inputs, outputs = loaded.signatures[export.SIGNATURE_KEY]
        logits = outputs["logits"]
        nodes = [logits.split(":")[0]]
        for name in extra:
          loaded.graph.get_tensor_by_name(name)  # a KeyError here: the export's record is wrong
          if name.split(":")[0] not in nodes:
            nodes.append(name.split(":")[0])
        with loaded.graph.as_default():
          graph_def = tf1.graph_util.convert_variables_to_constants(
              loaded.session, loaded.graph.as_graph_def(), nodes)
      finally:
        loaded.close()
      self._frozen = (graph_def, inputs, logits)
    return self._frozen

  def outputs(self, input_ids, input_mask, segment_ids, keys=(), name=TEACHER_SCOPE):
    """Imports the frozen teacher once into the current graph on these inputs.

    Args:
      input_ids, input_mask, segment_ids: int [batch_size, seq_length].
      keys: intermediate tensors wanted ("hidden/<i>", "attention_scores/<i>", "embedding"...).
      name: the import's name scope (uniquified by TensorFlow when taken).
    Returns:
      (logits float32 [batch_size, num_labels]: the teacher's raw logits z (an export of a teacher
      trained at temperature T serves z/T; multiplied back by T here); {key: tensor}: hidden and
      embedding
      [batch_size, seq_length, hidden], attention [batch_size, heads, seq_length, seq_length],
      pooled [batch_size, hidden]), all under stop_gradient.
    """
    keys = list(keys)
    wanted = [self.intermediate_name(key) for key in keys]
    graph_def, inputs, logits = self.frozen_graph()
    feeds = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
    input_map = {inputs[key]: tf.cast(tensor, tf.int32) for key, tensor in feeds.items()}
    found = tf1.import_graph_def(graph_def, input_map=input_map,
                                 return_elements=[logits] + wanted, name=name)
    found = [tf.stop_gradient(tensor) for tensor in found]
    # An export of a teacher trained with --do_distill --temperature=T serves logits z/T; scaled
    # back here, so distillation applies exactly one temperature: its own --temperature.
    logits = found[0] * self.training_temperature if self.training_temperature != 1.0 else found[0]
    return logits, dict(zip(keys, found[1:]))

  def logits(self, input_ids, input_mask, segment_ids):
    """Imports the frozen teacher into the current graph on these inputs.

    Returns:
      float32 [batch_size, num_labels]: the teacher's raw logits (see outputs), under
      stop_gradient.
    """
    return self.outputs(input_ids, input_mask, segment_ids)[0]

  def write_logits(self, record_file, output_file, fingerprint, has_label=False, batch_size=128,
                   max_tokens=2048):
    """One batched teacher pass over record_file; writes its records in order + `teacher_logits`
    (write_teachers_logits with this teacher alone). Returns the sidecar info."""
    return write_teachers_logits([self], record_file, output_file, fingerprint, has_label,
                                 batch_size, max_tokens)

  def batch_logits(self, examples, lengths, batch_size=128, max_tokens=2048):
    """The teacher's logits float32 [len(examples), num_labels] for tf.train.Examples.

    Batches are formed in order of length, each padded to its longest example only: on short
    texts (the takeaway reviews: median 16 tokens, a few over 100) batches of records in file
    order would be padded to ~90 tokens and cost several times the teacher's compute. A batch
    holds at most batch_size examples and batch_size × length ≤ max_tokens (or one example):
    on CPU, larger batches of long examples are slower per token.
    """
    logits = np.zeros([len(examples), len(self.labels)], dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    graph = tf.Graph()
    with graph.as_default():
      inputs = {name: tf1.placeholder(tf.int32, [None, None], name=name)
                for name in ("input_ids", "input_mask", "segment_ids")}
      output = self.logits(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
      graph.finalize()
    batches, start = [], 0
    while start < len(order):
      end = start + 1
      while (end < len(order) and end - start < batch_size and
             (end - start + 1) * lengths[order[end]] <= max_tokens):
        end += 1
      batches.append(order[start:end])
      start = end
    with tf1.Session(graph=graph, config=session_config()) as session:
      for chosen in batches:
        arrays = {name: np.zeros([len(chosen), lengths[chosen].max()], dtype=np.int32)
                  for name in inputs}
        for row, index in enumerate(chosen):
          length = lengths[index]
          arrays["input_ids"][row, :length] = _ints(examples[index], "input_ids")
          arrays["segment_ids"][row, :length] = _ints(examples[index], "segment_ids")
          arrays["input_mask"][row, :length] = 1
        logits[chosen] = session.run(output, {inputs[name]: arrays[name] for name in inputs})
    return logits


def _ints(example, name):
  return example.features.feature[name].int64_list.value


def _labels(examples):
  return np.array([_ints(e, "label_ids")[0] for e in examples], dtype=np.int64)


def write_teachers_logits(teachers, record_file, output_file, fingerprint, has_label=False,
                          batch_size=128, max_tokens=2048):
  """One batched pass of each teacher over record_file; writes its records in order plus
  `teacher_logits`: the teachers' logits one after another, [num_teachers * num_labels].

  has_label: whether record_file's records hold has_label (a transfer set's do): so do these.
  Returns the sidecar info: num_examples, num_teachers, teacher_accuracies (each teacher's, on
  the records' labels) and teacher_accuracy (the first teacher's).
  """
  examples = [tf.train.Example.FromString(record) for record in _read_records(record_file)]
  lengths = np.array([len(_ints(e, "input_ids")) for e in examples], dtype=np.int64)
  labels = _labels(examples)
  logits = [teacher.batch_logits(examples, lengths, batch_size, max_tokens)
            for teacher in teachers]
  accuracies = [float(np.mean(labels == np.argmax(z, -1))) if len(examples) else 0.0
                for z in logits]
  joined = np.concatenate(logits, axis=-1)

  def records():
    for example, example_logits in zip(examples, joined):
      example.features.feature["teacher_logits"].float_list.value[:] = example_logits.tolist()
      yield example

  return classifier_data.write_records(
      output_file, records(), fingerprint,
      {"teacher_accuracy": accuracies[0], "teacher_accuracies": accuracies,
       "num_teachers": len(teachers)}, has_teacher_logits=True, has_label=has_label)


def _read_records(record_file, chunk=4096):
  """The serialized records of a TFRecord file, in order."""
  records = []
  with tf.Graph().as_default() as graph:
    batch = tf1.data.make_one_shot_iterator(
        tf.data.TFRecordDataset(record_file).batch(chunk)).get_next()
    graph.finalize()
    with tf1.Session(graph=graph) as session:
      while True:
        try:
          records.extend(session.run(batch))
        except tf.errors.OutOfRangeError:
          return records


def records_teacher_logits(record_file, num_teachers):
  """(labels int64 [n], logits float32 [num_teachers, n, num_labels]) of a teacher-logit file."""
  examples = [tf.train.Example.FromString(record) for record in _read_records(record_file)]
  labels = _labels(examples)
  joined = np.array([e.features.feature["teacher_logits"].float_list.value for e in examples],
                    dtype=np.float32).reshape([len(examples), num_teachers, -1])
  return labels, np.transpose(joined, [1, 0, 2])


def ensemble_accuracy(labels, logits, weights, average="probs"):
  """Accuracy of several teachers' weighted average at T=1, as the student's loss averages them.

  Args:
    labels: int [n]; logits: float [num_teachers, n, num_labels]; weights: num_teachers floats.
    average: "probs" (softmax outputs averaged) or "logits".
  """
  weights = np.asarray(weights, np.float64) / float(np.sum(weights))
  logits = np.asarray(logits, np.float64)
  if average == "probs":
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logits = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
  combined = np.tensordot(weights, logits, axes=1)
  return float(np.mean(np.argmax(combined, -1) == labels)) if len(labels) else 0.0


def report_ensemble(accuracy, teacher_accuracies, split="dev"):
  """Logs the teachers' average's accuracy; warns when it is no better than its best teacher.

  Returns whether it warned.
  """
  best = int(np.argmax(teacher_accuracies))
  if accuracy > teacher_accuracies[best]:
    log("Teachers' average: %.4f accuracy on the %s split (best single teacher: %.4f)" %
        (accuracy, split, teacher_accuracies[best]))
    return False
  log("WARNING: the teachers' average reaches %.4f accuracy on the %s split, no better than "
      "teacher %d of --teacher_model alone (%.4f): the student learns from a target no better "
      "than that teacher's (several teachers pay off when their average beats each of them)" %
      (accuracy, split, best + 1, teacher_accuracies[best]))
  return True


def warn_if_weak(accuracy, version_dir, split="dev"):
  if accuracy < MIN_TEACHER_ACCURACY:
    bar = "!" * 78
    log("%s\nWARNING: the teacher %s reaches only %.3f accuracy on the %s split (< %.1f).\n"
        "It is most likely untrained, trained on other data, or fed another vocabulary:\n"
        "distilling from it will teach the student its mistakes.\n%s" %
        (bar, version_dir, accuracy, split, MIN_TEACHER_ACCURACY, bar))
    return True
  log("Teacher %s: %.4f accuracy on the %s split" % (version_dir, accuracy, split))
  return False
