"""Adam with decoupled weight decay, warmup + linear decay, global-norm clipping, loss scaling.

Slot variables are named `<variable>/adam_m` and `<variable>/adam_v` as in Google's BERT, so
its fine-tuned checkpoints resume here and ours resume there, with or without bias correction
(the correction is computed from the global step and adds no variable).

Bias correction (Kingma & Ba; Model Garden's TF2 AdamWeightDecay and Hugging Face's AdamW have
it) is on by default. Google's TF1 optimizer skips it, so its first updates are about
1/sqrt(1 - beta_2^t) · (1 - beta_1^t) ≈ 3× larger than the learning rate says while beta_2^t is
close to 1: harmless at fine-tuning rates, but from scratch a rate of 1e-3 then collapses the
model to a constant prediction. bias_correction=False reproduces Google's updates exactly.
"""

import re

import tensorflow as tf

tf1 = tf.compat.v1

NO_DECAY_PATTERNS = ("LayerNorm", "layer_norm", "bias")


def learning_rate_schedule(global_step, init_lr, num_train_steps, num_warmup_steps):
  """Linear warmup from 0 to init_lr over num_warmup_steps, then linear decay to 0 at the end.

  Returns:
    A scalar float32 tensor.
  """
  step = tf.cast(global_step, tf.float32)
  # The decay runs from init_lr at the end of warmup to 0 at num_train_steps, so the peak is
  # init_lr (Google's decay over all steps peaked at init_lr * (1 - warmup / total)).
  total = float(max(num_train_steps, 1))
  decay_steps = max(total - float(num_warmup_steps or 0), 1.0)
  decayed = init_lr * tf.maximum(0.0, (total - step) / decay_steps)
  if not num_warmup_steps:
    return decayed
  warmup = init_lr * step / float(num_warmup_steps)
  return tf.where(step < num_warmup_steps, warmup, decayed)


def _uses_weight_decay(name, exclude=NO_DECAY_PATTERNS):
  return not any(re.search(pattern, name) for pattern in exclude)


def _variable_name(variable):
  return re.sub(r":\d+$", "", variable.name)


class DynamicLossScale(object):
  """Loss scale for fp16: halves on a non-finite gradient, doubles after `period` finite steps."""

  def __init__(self, initial=2.0 ** 15, period=2000, minimum=1.0):
    self.period = period
    self.minimum = minimum
    self.scale = tf1.get_variable("loss_scale", [], tf.float32, trainable=False,
                                  initializer=tf1.constant_initializer(initial))
    self.good_steps = tf1.get_variable("loss_scale_good_steps", [], tf.int64, trainable=False,
                                       initializer=tf1.zeros_initializer())

  def update(self, grads_finite):
    """Ops that move the scale after a step whose gradients were (not) all finite."""
    return self.update_variables(self.scale, self.good_steps, grads_finite)

  def update_variables(self, scale, good_steps, grads_finite):
    """update() on given variables: one replica's copies of the scale and of good_steps."""
    grow = tf.logical_and(grads_finite, good_steps + 1 >= self.period)
    new_scale = tf.where(grads_finite,
                         tf.where(grow, scale * 2.0, scale),
                         tf.maximum(scale / 2.0, self.minimum))
    new_good = tf.where(tf.logical_and(grads_finite, tf.logical_not(grow)),
                        good_steps + 1, tf.zeros_like(good_steps))
    return tf.group(scale.assign(new_scale), good_steps.assign(new_good))


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps, weight_decay_rate=0.01,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-6, clip_norm=1.0, loss_scale=None,
                     tvars=None, bias_correction=True):
  """Builds the train op for `loss` and increments the global step.

  Works in any replica context: without a tf.distribute strategy (the default one, a single
  device) and inside `strategy.extended.call_for_each_replica` (MirroredStrategy,
  MultiWorkerMirroredStrategy). Each replica differentiates its own loss; the gradients are
  summed over replicas (`batch_reduce_to`, an all-reduce) and applied once per variable copy in
  cross-replica context (`extended.update`), where the global-norm clipping and the finiteness
  check see the summed gradients: with each replica's loss its share of the global mean
  (distribute.global_mean), a step equals the one-device step on the whole global batch.

  Args:
    loss: scalar float32 loss; under a strategy, this replica's share of the loss (the loss
      is the sum of the replicas' values).
    loss_scale: None, or a DynamicLossScale: the loss is scaled before differentiation and a step
      whose gradients are not all finite changes no weight (only the scale).
    bias_correction: divide the moments by (1 - beta^t), t = global step + 1 (textbook Adam);
      False is Google's TF1 AdamWeightDecayOptimizer.
  Returns:
    (train_op, learning_rate, grads_finite) — the last a boolean scalar.
  """
  global_step = tf1.train.get_or_create_global_step()
  learning_rate = learning_rate_schedule(global_step, init_lr, num_train_steps, num_warmup_steps)
  tvars = tvars if tvars is not None else tf1.trainable_variables()

  scaled_loss = loss * loss_scale.scale if loss_scale is not None else loss
  grads = tf.gradients(scaled_loss, tvars)
  grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, tvars)]
  if loss_scale is not None:
    grads = [g / loss_scale.scale for g in grads]

  def apply(strategy, grads_and_vars):
    """Cross-replica context: all-reduce, clip, Adam; returns (train_op, grads_finite)."""
    extended = strategy.extended
    if strategy.num_replicas_in_sync > 1:
      reduced = extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, grads_and_vars)
    else:
      reduced = [g for g, _ in grads_and_vars]
    # Scalars from the summed gradients (the first copy: every copy holds the same values).
    grads_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in reduced])
    # Google's BERT clips the raw gradients by their global norm before Adam; this is
    # tf.clip_by_global_norm's arithmetic, the factor applied to each replica's copy.
    norm = tf.linalg.global_norm(reduced)
    clip_scale = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
    step = extended.read_var(global_step) if strategy.num_replicas_in_sync > 1 else global_step
    lr = learning_rate_schedule(step, init_lr, num_train_steps, num_warmup_steps)
    if bias_correction:
      t = tf.cast(step, tf.float32) + 1.0
      corrections = (1.0 / (1.0 - tf.pow(beta_1, t)), 1.0 / (1.0 - tf.pow(beta_2, t)))
    else:
      corrections = (None, None)
    step_size = tf.where(grads_finite, lr, 0.0)

    def update_one(param, grad, m, v, name):
      """One copy of a variable and its slots (plain variables on one device)."""
      grad = tf.identity(grad * clip_scale)
      # Non-finite steps are masked rather than branched around: one graph, no control flow.
      grad = tf.where(grads_finite, grad, tf.zeros_like(grad))
      next_m = beta_1 * m + (1.0 - beta_1) * grad
      next_v = beta_2 * v + (1.0 - beta_2) * tf.square(grad)
      if bias_correction:
        update = next_m * corrections[0] / (tf.sqrt(next_v * corrections[1]) + epsilon)
      else:
        update = next_m / (tf.sqrt(next_v) + epsilon)
      if weight_decay_rate and _uses_weight_decay(name):
        update += weight_decay_rate * param
      next_m = tf.where(grads_finite, next_m, m)
      next_v = tf.where(grads_finite, next_v, v)
      return tf.group(param.assign_sub(step_size * update), m.assign(next_m), v.assign(next_v))

    updates = []
    for grad, (_, param) in zip(reduced, grads_and_vars):
      name = _variable_name(param)
      m = tf1.get_variable(name + "/adam_m", param.shape.as_list(), tf.float32, trainable=False,
                           initializer=tf1.zeros_initializer())
      v = tf1.get_variable(name + "/adam_v", param.shape.as_list(), tf.float32, trainable=False,
                           initializer=tf1.zeros_initializer())
      updates.append(extended.update(param, update_one, args=(grad, m, v, name)))
    if loss_scale is not None:
      updates.append(extended.update(loss_scale.scale, loss_scale.update_variables,
                                     args=(loss_scale.good_steps, grads_finite)))
    with tf.control_dependencies(tf.nest.flatten(updates)):
      train_op = extended.update(global_step, lambda step: step.assign_add(1))
    return train_op, grads_finite

  context = tf.distribute.get_replica_context()
  if context is None:  # cross-replica context: a strategy's scope, outside call_for_each_replica
    raise ValueError("create_optimizer: call it in a replica context (the model_fn)")
  train_op, grads_finite = context.merge_call(apply, args=(list(zip(grads, tvars)),))
  return train_op, learning_rate, grads_finite
