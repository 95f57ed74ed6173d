"""Initialising a model from a checkpoint: Google's, a training one, or a SavedModel export.

A layer map (student layer i takes checkpoint layer map[i]) lets a shallow student start from a
deep teacher's layers, e.g. `0,4,8,11` for 4 of BERT-Base's 12.
"""

import os
import re

import tensorflow as tf

from bert.errors import UsageError
from bert.training import check_shapes_match, log

tf1 = tf.compat.v1

_LAYER = re.compile(r"^(.*?/encoder/layer_)(\d+)(/.*)$")


def resolve_checkpoint(path, flag="--init_checkpoint"):
  """A checkpoint file prefix for a prefix, a training directory or a SavedModel (version) dir."""
  if not path:
    return None
  if tf.io.gfile.exists(path + ".index"):
    return path
  if os.path.isdir(path):
    saved_model_vars = os.path.join(path, "variables", "variables")
    if tf.io.gfile.exists(saved_model_vars + ".index"):
      return saved_model_vars
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
    versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()), reverse=True)
    for version in versions:
      candidate = os.path.join(path, str(version), "variables", "variables")
      if tf.io.gfile.exists(candidate + ".index"):
        return candidate
  raise UsageError("%s %s: not a checkpoint (expected a model.ckpt prefix with a .index file, "
                     "a directory holding checkpoints, or a SavedModel export)" % (flag, path))


def parse_layer_map(text, num_layers, flag="--init_layer_map"):
  """'0,4,8,11' → [0, 4, 8, 11]; its length must equal the model's number of layers."""
  if not text:
    return None
  try:
    layers = [int(item) for item in text.split(",")]
  except ValueError:
    raise UsageError("%s: expected comma-separated layer indices such as 0,4,8,11, got %r" %
                         (flag, text))
  if len(layers) != num_layers or min(layers) < 0:
    raise UsageError("%s: expected %d non-negative layer indices (one per model layer), got %r" %
                         (flag, num_layers, text))
  return layers


def checkpoint_name(variable_name, layer_map=None):
  """The checkpoint variable that initialises a graph variable under the layer map."""
  match = _LAYER.match(variable_name)
  if layer_map is None or not match:
    return variable_name
  layer = int(match.group(2))
  return "%s%d%s" % (match.group(1), layer_map[layer], match.group(3))


def assignment_map(checkpoint, variables, layer_map=None):
  """{checkpoint name: variable} for the variables the checkpoint has; shapes checked.

  Returns (assignment, names of variables it does not initialise).
  """
  available = dict(tf.train.list_variables(checkpoint))
  if layer_map is not None:
    layers = {int(m.group(2)) for m in map(_LAYER.match, available) if m}
    missing = sorted(set(layer_map) - layers)
    if missing:
      raise UsageError("--init_layer_map: checkpoint %s has no layer %s (it has layers 0-%d)" %
                             (checkpoint, missing[0], max(layers) if layers else -1))
  assignment, skipped = {}, []
  for variable in variables:
    name = variable.op.name
    source = checkpoint_name(name, layer_map)
    if source in available:
      assignment[source] = variable
    else:
      skipped.append(name)
  check_shapes_match(checkpoint, assignment, what="--init_checkpoint")
  return assignment, skipped


def check_init_checkpoint(init_checkpoint, variables, layer_map=None):
  """Resolves init_checkpoint and checks it can initialise `variables` (names, shapes, layers).

  Returns (checkpoint prefix, {checkpoint name: variable}, names of variables not in it).
  """
  checkpoint = resolve_checkpoint(init_checkpoint)
  assignment, skipped = assignment_map(checkpoint, variables, layer_map)
  if not assignment:
    raise UsageError("--init_checkpoint %s: shares no variable with the model (expected Google "
                     "BERT names such as bert/embeddings/word_embeddings)" % init_checkpoint)
  return checkpoint, assignment, skipped


def init_from_checkpoint(init_checkpoint, layer_map=None, variables=None):
  """Makes the variables' initialisers read from init_checkpoint (applied on a fresh start only)."""
  variables = variables if variables is not None else tf1.trainable_variables()
  checkpoint, assignment, skipped = check_init_checkpoint(init_checkpoint, variables, layer_map)
  tf1.train.init_from_checkpoint(checkpoint, {src: var for src, var in assignment.items()})
  log("Initialised %d of %d variables from %s%s" %
    (len(assignment), len(variables), checkpoint,
         "; not in it (trained from scratch): " + ", ".join(skipped) if skipped else ""))
  return assignment
