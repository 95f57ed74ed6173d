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
    grow = tf.logical_and(grads_finite, self.good_steps + 1 >= self.period)
    new_scale = tf.where(grads_finite,
                         tf.where(grow, self.scale * 2.0, self.scale),
                         tf.maximum(self.scale / 2.0, self.minimum))
    new_good = tf.where(tf.logical_and(grads_finite, tf.logical_not(grow)),
                        self.good_steps + 1, tf.zeros_like(self.good_steps))
    return tf.group(self.scale.assign(new_scale), self.good_steps.assign(new_good))


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps, weight_decay_rate=0.01,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-6, clip_norm=1.0, loss_scale=None,
                     tvars=None, bias_correction=True):
  """Builds the train op for `loss` and increments the global step.

  Args:
    loss: scalar float32 loss.
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
  grads_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
  # Google's BERT clips the raw gradients by their global norm before Adam.
  grads, _ = tf.clip_by_global_norm(grads, clip_norm=clip_norm)
  if bias_correction:
    t = tf.cast(global_step, tf.float32) + 1.0
    m_correction = 1.0 / (1.0 - tf.pow(beta_1, t))
    v_correction = 1.0 / (1.0 - tf.pow(beta_2, t))

  updates = []
  for grad, param in zip(grads, tvars):
    name = _variable_name(param)
    m = tf1.get_variable(name + "/adam_m", param.shape.as_list(), tf.float32, trainable=False,
                         initializer=tf1.zeros_initializer())
    v = tf1.get_variable(name + "/adam_v", param.shape.as_list(), tf.float32, trainable=False,
                         initializer=tf1.zeros_initializer())
    # Non-finite steps are masked rather than branched around: one graph, no control flow.
    grad = tf.where(grads_finite, grad, tf.zeros_like(grad))
    next_m = beta_1 * m + (1.0 - beta_1) * grad
    next_v = beta_2 * v + (1.0 - beta_2) * tf.square(grad)
    if bias_correction:
      update = next_m * m_correction / (tf.sqrt(next_v * v_correction) + epsilon)
    else:
      update = next_m / (tf.sqrt(next_v) + epsilon)
    if weight_decay_rate and _uses_weight_decay(name):
      update += weight_decay_rate * param
    step_size = tf.where(grads_finite, learning_rate, 0.0)
    next_m = tf.where(grads_finite, next_m, m)
    next_v = tf.where(grads_finite, next_v, v)
    updates.extend([param.assign_sub(step_size * update), m.assign(next_m), v.assign(next_v)])

  if loss_scale is not None:
    updates.append(loss_scale.update(grads_finite))
  with tf.control_dependencies(updates):
    train_op = global_step.assign_add(1)
  return train_op, learning_rate, grads_finite
