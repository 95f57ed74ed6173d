"""The classification model_fn shared by the teacher and the student entry points."""

import collections

import numpy as np
import tensorflow as tf

from bert import checkpoint_init, collapse, distribute, modeling, optimization
from bert.training import ModeKeys, ModelSpec, log

tf1 = tf.compat.v1

PRECISIONS = {"fp32": tf.float32, "fp16": tf.float16, "bf16": tf.bfloat16}


def batch_mean(per_example):
  """Mean of float32 [batch_size]; 0, not nan, for an empty batch (a replica's slice of an
  epoch's last batch may be empty, and replicas' summaries are averaged)."""
  count = tf.cast(tf.size(per_example), tf.float32)
  return tf.reduce_sum(per_example) / tf.maximum(count, 1.0)


def classifier_logits(bert_config, is_training, input_ids, input_mask, segment_ids, num_labels,
                      use_one_hot_embeddings=False, compute_dtype=tf.float32, row_blocks=True):
  """BERT's pooled output through dropout and a dense layer (`output_weights`, `output_bias`).

  row_blocks: see modeling.BertModel.

  Returns:
    logits: float32 [batch_size, num_labels]; model: the BertModel.
  """
  model = modeling.BertModel(config=bert_config, is_training=is_training, input_ids=input_ids,
                             input_mask=input_mask, token_type_ids=segment_ids,
                             use_one_hot_embeddings=use_one_hot_embeddings,
                             compute_dtype=compute_dtype, row_blocks=row_blocks)
  pooled = tf.cast(model.get_pooled_output(), tf.float32)
  hidden_size = pooled.shape[-1]
  output_weights = tf1.get_variable(
      "output_weights", [num_labels, hidden_size],
      initializer=modeling.create_initializer(bert_config.initializer_range))
  output_bias = tf1.get_variable("output_bias", [num_labels], initializer=tf1.zeros_initializer())
  if is_training:
    pooled = modeling.dropout(pooled, 0.1)
  logits = tf.nn.bias_add(tf.matmul(pooled, output_weights, transpose_b=True), output_bias)
  return logits, model


def tempered_cross_entropy(label_ids, logits, num_labels, temperature=1.0):
  """T²·CE(y, softmax(logits/T)) per example, [batch_size]; T=1 is plain cross-entropy.

  The T² keeps gradient magnitudes comparable across temperatures (Hinton et al.).
  """
  log_probs = tf.nn.log_softmax(logits / temperature, axis=-1)
  one_hot = tf.one_hot(label_ids, depth=num_labels, dtype=tf.float32)
  return -tf.reduce_sum(one_hot * log_probs, axis=-1) * (temperature ** 2)


# What a loss builder returns: per-example loss [batch_size], scalar summaries for training,
# extra per-example tensors for eval, and a function adding metrics computed from them.
LossParts = collections.namedtuple("LossParts",
                                   ["per_example_loss", "summaries", "eval_tensors", "metrics_fn"])


def hard_label_loss(temperature):
  """The teacher's loss: cross-entropy on the labels, optionally on temperature-scaled logits."""

  def build(features, logits, label_ids, num_labels, mode):
    del features, mode
    return LossParts(tempered_cross_entropy(label_ids, logits, num_labels, temperature), {}, {},
                     None)

  return build


def classification_metrics(label_ids, probabilities, per_example_loss, label_list):
  """Accuracy, mean loss, and per-class precision/recall/F1 (named by label) plus macro F1."""
  predicted = np.argmax(probabilities, axis=-1)
  metrics = {"eval_accuracy": float(np.mean(predicted == label_ids)),
             "eval_loss": float(np.mean(per_example_loss)),
             "num_examples": int(len(label_ids))}
  f1s = []
  for index, label in enumerate(label_list):
    true_pos = float(np.sum((predicted == index) & (label_ids == index)))
    precision = true_pos / max(np.sum(predicted == index), 1)
    recall = true_pos / max(np.sum(label_ids == index), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics.update({"precision_%s" % label: precision, "recall_%s" % label: recall,
                    "f1_%s" % label: f1})
    f1s.append(f1)
  metrics["macro_f1"] = float(np.mean(f1s))
  return metrics


def model_fn_builder(bert_config, label_list, init_checkpoint=None, learning_rate=5e-5,
                     num_train_steps=1, num_warmup_steps=0, use_one_hot_embeddings=False,
                     temperature=1.0, precision="fp32", init_layer_map=None, loss_builder=None,
                     adam_bias_correction=True):
  """Returns model_fn(features, labels, mode, params) → ModelSpec.

  Probabilities and predictions are always at T=1 (softmax of the raw logits) except for a
  teacher trained with temperature T, whose calibrated prediction is softmax(logits / T).
  loss_builder(features, logits, label_ids, num_labels, mode) → LossParts; the default is
  cross-entropy on the labels. The distillation entry point passes Hinton's loss here.
  """
  num_labels = len(label_list)
  compute_dtype = PRECISIONS[precision]
  loss_builder = loss_builder or hard_label_loss(temperature)

  def model_fn(features, labels, mode, params):
    del labels, params
    is_training = mode == ModeKeys.TRAIN
    logits, _ = classifier_logits(bert_config, is_training, features["input_ids"],
                                  features["input_mask"], features["segment_ids"], num_labels,
                                  use_one_hot_embeddings, compute_dtype)
    probabilities = tf.nn.softmax(logits / temperature, axis=-1)
    predictions = {"probabilities": probabilities, "logits": logits}
    if mode == ModeKeys.PREDICT:
      return ModelSpec(mode, predictions=predictions)

    label_ids = features["label_ids"]
    parts = loss_builder(features, logits, label_ids, num_labels, mode)
    # Under a tf.distribute strategy: this replica's share of the global batch's mean loss.
    loss = distribute.global_mean(parts.per_example_loss)
    if mode == ModeKeys.EVAL:
      eval_tensors = dict(parts.eval_tensors, label_ids=label_ids, probabilities=probabilities,
                          per_example_loss=parts.per_example_loss)

      def metrics_fn(arrays):
        metrics = classification_metrics(arrays["label_ids"], arrays["probabilities"],
                                         arrays["per_example_loss"], label_list)
        if parts.metrics_fn:
          metrics.update(parts.metrics_fn(arrays))
        warning = collapse.single_class_warning(np.argmax(arrays["probabilities"], axis=-1),
                                                label_list, learning_rate=learning_rate)
        if warning:
          log(warning)
        return metrics

      return ModelSpec(mode, loss=loss, eval_tensors=eval_tensors, metrics_fn=metrics_fn)

    if init_checkpoint:
      distribute.once(lambda: checkpoint_init.init_from_checkpoint(init_checkpoint,
                                                                   init_layer_map))
    loss_scale = optimization.DynamicLossScale() if precision == "fp16" else None
    train_op, lr, _ = optimization.create_optimizer(loss, learning_rate, num_train_steps,
                                                    num_warmup_steps, loss_scale=loss_scale,
                                                    bias_correction=adam_bias_correction)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predicted, label_ids), tf.float32)
    if "has_label" in features:  # transfer-set examples have no label: not in the accuracy
      labelled = tf.cast(features["has_label"], tf.float32)
      accuracy = tf.reduce_sum(correct * labelled) / tf.maximum(tf.reduce_sum(labelled), 1.0)
    else:
      accuracy = batch_mean(correct)
    summaries = dict(parts.summaries, loss=loss, learning_rate=lr, accuracy=accuracy)
    if loss_scale is not None:
      summaries["loss_scale"] = loss_scale.scale
    return ModelSpec(mode, loss=loss, train_op=train_op, summaries=summaries,
                     num_examples=tf.shape(label_ids)[0])

  return model_fn
