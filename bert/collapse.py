"""Warnings for a run that "succeeds" with a model that predicts the same thing for everything.

From scratch, a learning rate that is too high drives BERT to a constant prediction within a few
dozen steps: the training loss then sits at the entropy of that prediction (ln(num_labels) for
a uniform one) and every dev example gets the same label. Nothing fails, so we say so.
"""

import math

import numpy as np

# The loss is "at" the constant-prediction level within this fraction of it.
LEVEL_TOLERANCE = 0.03
MIN_STEPS = 20


def _advice(learning_rate):
  rate = " (--learning_rate %g)" % learning_rate if learning_rate else ""
  return ("The usual cause is a learning rate too high for training from scratch%s: try 1e-4 to "
          "5e-4 from scratch (2e-5 to 5e-5 when fine-tuning a pre-trained checkpoint), a larger "
          "--warmup_proportion, and keep --adam_bias_correction on." % rate)


def constant_loss_warning(losses, num_labels, temperature=1.0, learning_rate=None):
  """A warning when the last quarter of a run's training losses sits at ln(num_labels).

  Args:
    losses: the run's per-step training losses, in order.
    temperature: the hard-label loss is T²·CE at temperature T, so its constant level is
      T²·ln(num_labels).
  Returns:
    The warning (one line), or None for a run that learned or is too short to tell.
  """
  if num_labels < 2 or len(losses) < MIN_STEPS:
    return None
  tail = np.asarray(losses[-max(10, len(losses) // 4):], dtype=np.float64)
  level = math.log(num_labels) * temperature ** 2
  mean = float(np.mean(tail))
  if abs(mean - level) > LEVEL_TOLERANCE * level:
    return None
  return ("WARNING: the training loss stayed at %.3f ≈ ln(%d)%s, the loss of predicting the same "
          "probabilities for every example, over the last %d steps: the model has learned nothing "
          "but a constant prediction (it collapsed, or trained too few steps). %s" %
          (mean, num_labels, " × T²" if temperature != 1.0 else "", len(tail),
           _advice(learning_rate)))


def single_class_warning(predicted, label_list, split="dev", learning_rate=None):
  """A warning when every example of an evaluation gets the same predicted label.

  Args:
    predicted: int [num_examples], predicted label indices.
  Returns:
    The warning (one line), or None.
  """
  predicted = np.asarray(predicted)
  if len(label_list) < 2 or predicted.size < 2 or np.any(predicted != predicted.flat[0]):
    return None
  return ("WARNING: the model predicts label '%s' for all %d %s examples: it has learned "
          "nothing beyond one class (it collapsed, or trained too few steps). %s" %
          (label_list[int(predicted.flat[0])], predicted.size, split, _advice(learning_rate)))
