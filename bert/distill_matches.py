"""Intermediate-layer distillation losses: the student's inner tensors against the teacher's.

distill_config.py describes the matches; this module builds them in the student's training graph
from the student's BertModel and the frozen teacher's tensors (distillation.Teacher.outputs).
Every loss is per example ([batch_size]) and only real tokens count: hidden-state losses average
over the tokens whose input_mask is 1, attention losses over real query rows and real keys.

A hidden (embedding, pooled) match between models of different widths goes through a projection
`distill_projection/<match name>/{kernel,bias}` (student → teacher width). It is trained with the
student and saved in its training checkpoints, but the export rebuilds the classifier alone from
the checkpoint's bert/ and output_* variables: no projection reaches an exported student.
"""

import math

import tensorflow as tf

from bert import distill_config

tf1 = tf.compat.v1

PROJECTION_SCOPE = "distill_projection"


def schedule_tensor(spec, global_step, total_steps):
  """float32 scalar: the schedule's value at global_step (as distill_config.schedule_value)."""
  if spec["schedule"] == "constant":
    return tf.constant(spec["start"], tf.float32)
  begin, end = distill_config.schedule_bounds(spec, total_steps)
  step = tf.cast(global_step, tf.float32)
  progress = (tf.clip_by_value((step - begin) / float(end - begin), 0.0, 1.0) if end > begin
              else tf.constant(1.0))
  start, stop = spec["start"], spec["end"]
  if spec["schedule"] == "linear":
    return start + (stop - start) * progress
  return stop + (start - stop) * 0.5 * (1.0 + tf.cos(math.pi * progress))


def _masked_mean(values, mask):
  """values, mask: [batch_size, seq_length] → [batch_size]: the mean over mask == 1."""
  return tf.reduce_sum(values * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def hidden_mse(student, teacher, mask):
  """Mean squared difference per real token, averaged over the width.

  Args:
    student, teacher: float32 [batch_size, seq_length, width].
    mask: float32 [batch_size, seq_length], 1 for real tokens.
  Returns:
    [batch_size].
  """
  return _masked_mean(tf.reduce_mean(tf.square(student - teacher), axis=-1), mask)


def hidden_cosine(student, teacher, mask):
  """1 − cosine similarity per real token, averaged (shapes as hidden_mse)."""
  cosine = tf.reduce_sum(tf.nn.l2_normalize(student, -1) * tf.nn.l2_normalize(teacher, -1), -1)
  return _masked_mean(1.0 - cosine, mask)


def vector_mse(student, teacher):
  """[batch_size, width] pair → [batch_size]: mean squared difference."""
  return tf.reduce_mean(tf.square(student - teacher), axis=-1)


def vector_cosine(student, teacher):
  """[batch_size, width] pair → [batch_size]: 1 − cosine similarity."""
  return 1.0 - tf.reduce_sum(tf.nn.l2_normalize(student, -1) * tf.nn.l2_normalize(teacher, -1),
                             -1)


def pkd(student, teacher):
  """BERT-PKD: squared distance of the L2-normalised vectors ([batch, width] → [batch])."""
  return tf.reduce_sum(tf.square(tf.nn.l2_normalize(student, -1) -
                                 tf.nn.l2_normalize(teacher, -1)), -1)


def _attention_masks(mask):
  """[batch_size, seq_length] → query rows [batch, 1, seq, 1], keys [batch, 1, 1, seq]."""
  return mask[:, tf.newaxis, :, tf.newaxis], mask[:, tf.newaxis, tf.newaxis, :]


def attention_mse(student, teacher, mask):
  """TinyBERT: mean squared difference of attention scores over real (query, key) pairs.

  Args:
    student, teacher: float32 [batch_size, num_heads, seq_length, seq_length], scores.
    mask: float32 [batch_size, seq_length].
  Returns:
    [batch_size]: the mean over heads and over the pairs whose query and key are real tokens.
  """
  rows, keys = _attention_masks(mask)
  valid = rows * keys
  heads = tf.cast(tf.shape(student)[1], tf.float32)
  total = tf.reduce_sum(tf.square(student - teacher) * valid, axis=[1, 2, 3])
  return total / tf.maximum(heads * tf.reduce_sum(valid, axis=[1, 2, 3]), 1.0)


def attention_kl(student, teacher, mask):
  """MiniLM: KL(teacher ‖ student) of each real query row's distribution over real keys.

  Args:
    student, teacher: float32 [batch_size, num_heads, seq_length, seq_length], scores (the
      softmax's input; padded keys carry MASK_ADDER, so their probability is 0 on both sides).
    mask: float32 [batch_size, seq_length].
  Returns:
    [batch_size]: the mean over heads and real query rows.
  """
  rows, keys = _attention_masks(mask)
  log_teacher = tf.nn.log_softmax(teacher, axis=-1)
  log_student = tf.nn.log_softmax(student, axis=-1)
  kl = tf.reduce_sum(keys * tf.exp(log_teacher) * (log_teacher - log_student), axis=-1)
  heads = tf.cast(tf.shape(student)[1], tf.float32)
  return (tf.reduce_sum(kl * rows[..., 0], axis=[1, 2]) /
          tf.maximum(heads * tf.reduce_sum(mask, axis=1), 1.0))


def project(x, width, name):
  """x·kernel + bias to `width`, variables under distill_projection/<name>/.

  Args:
    x: float32 [..., in_width].
  Returns:
    float32 [..., width].
  """
  in_width = int(x.shape[-1])
  with tf1.variable_scope(PROJECTION_SCOPE, reuse=tf1.AUTO_REUSE):
    with tf1.variable_scope(name):
      kernel = tf1.get_variable(
          "kernel", [in_width, width],
          initializer=tf1.truncated_normal_initializer(stddev=1.0 / math.sqrt(in_width)))
      bias = tf1.get_variable("bias", [width], initializer=tf1.zeros_initializer())
  return tf.tensordot(x, kernel, [[-1], [0]]) + bias


def teacher_key(match):
  """The teacher tensor a match reads.

  One of "hidden/<i>", "attention_scores/<i>", "embedding", "pooled".
  """
  if match["feature"] == "hidden":
    return "hidden/%d" % match["teacher_layer"]
  if match["feature"] == "attention":
    return "attention_scores/%d" % match["teacher_layer"]
  return match["feature"]


def student_tensor(model, match):
  """The student's side of a match, from its BertModel, in float32."""
  feature = match["feature"]
  if feature == "hidden":
    tensor = model.get_all_encoder_layers()[match["student_layer"]]
  elif feature == "attention":
    tensor = model.get_all_attention_scores()[match["student_layer"]]
  elif feature == "embedding":
    tensor = model.get_embedding_output()
  else:
    tensor = model.get_pooled_output()
  return tf.cast(tensor, tf.float32)


def match_loss(match, student, teacher, mask):
  """Per-example loss [batch_size] of one match (student projected to the teacher's width)."""
  teacher = tf.stop_gradient(tf.cast(teacher, tf.float32))
  feature, loss = match["feature"], match["loss"]
  if feature == "attention":
    return (attention_mse if loss == "mse" else attention_kl)(student, teacher, mask)
  teacher_width = int(teacher.shape[-1])
  if int(student.shape[-1]) != teacher_width:
    student = project(student, teacher_width, match["name"])
  if feature == "pooled":
    return {"mse": vector_mse, "cosine": vector_cosine, "pkd": pkd}[loss](student, teacher)
  if loss == "pkd":
    return pkd(student[:, 0, :], teacher[:, 0, :])
  return (hidden_mse if loss == "mse" else hidden_cosine)(student, teacher, mask)


def build_losses(matches, model, teacher_tensors, input_mask, global_step, total_steps):
  """The weighted sum of the matches' losses, and their training summaries.

  Args:
    matches: distill_config.DistillConfig.matches.
    model: the student's BertModel.
    teacher_tensors: {teacher_key(match): teacher tensor}.
    input_mask: int [batch_size, seq_length].
  Returns:
    (loss float32 [batch_size] = Σ weight·match loss, {summary name: scalar}): each match's
    unweighted mean loss as "match/<name>", a scheduled weight's value as "weight/<name>".
  """
  mask = tf.cast(input_mask, tf.float32)
  total = tf.zeros([tf.shape(mask)[0]], tf.float32)
  summaries = {}
  for match in matches:
    loss = match_loss(match, student_tensor(model, match), teacher_tensors[teacher_key(match)],
                      mask)
    weight = schedule_tensor(match["weight"], global_step, total_steps)
    total += weight * loss
    summaries["match/" + match["name"]] = tf.reduce_mean(loss)
    if match["weight"]["schedule"] != "constant":
      summaries["weight/" + match["name"]] = weight
  return total, summaries


def ensemble_logits(teacher_logits, weights, temperature, average="probs"):
  """Several teachers' logits → logits whose softmax at `temperature` is their soft target.

  average="probs": Σ wₖ·softmax(zₖ/T), returned as T·log of it (so softmax(result/T) is that
  average); "logits": Σ wₖ·zₖ. Weights are normalised to sum to 1.

  Args:
    teacher_logits: list of float32 [batch_size, num_labels].
    weights: list of positive floats.
    temperature: float or float32 scalar.
  Returns:
    float32 [batch_size, num_labels].
  """
  total = float(sum(weights))
  if len(teacher_logits) == 1:
    return teacher_logits[0]
  if average == "logits":
    return tf.add_n([w / total * z for w, z in zip(weights, teacher_logits)])
  probs = tf.add_n([w / total * tf.nn.softmax(z / temperature, axis=-1)
                    for w, z in zip(weights, teacher_logits)])
  return temperature * tf.math.log(tf.maximum(probs, 1e-30))
