"""Where an export's parts are on disk, and reading them back, without TensorFlow.

Layout: `<base>/<version>/{saved_model.pb, variables/, assets/vocab.txt,
assets.extra/{bert_export.json, tf_serving_warmup_requests}}`; a server loads the highest
numeric version.
"""

import json
import os

from bert.errors import UsageError
from bert.features import INPUT_NAMES  # noqa: F401  (the serving signature's inputs)

SERVE_TAG = "serve"
SIGNATURE_KEY = "serving_default"
INFO_FILE = "bert_export.json"
WARMUP_FILE = "tf_serving_warmup_requests"
TEMP_PREFIX = ".tmp-"
# Serving with XLA on CPU: TensorFlow's auto-clustering compiles the served graph into a few
# fused executables (one per input shape), which cuts small-batch latency. A server process
# needs this in its environment (scripts/serve.sh XLA=1 sets it), and tensorflow_model_server
# also --xla_cpu_compilation_enabled=true.
XLA_SERVING_FLAGS = "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"


def numeric_versions(base_dir):
  """Version numbers of complete exports under base_dir, newest first."""
  if not os.path.isdir(base_dir):
    return []
  versions = [int(d) for d in os.listdir(base_dir)
              if d.isdigit() and os.path.isfile(os.path.join(base_dir, d, "saved_model.pb"))]
  return sorted(versions, reverse=True)


def resolve_version_dir(path, flag="--teacher_model"):
  """A SavedModel version dir for a version dir or a base dir (then its newest numeric version)."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  if not os.path.exists(path):
    raise UsageError("%s %s: not found" % (flag, path))
  if not os.path.isdir(path):
    raise UsageError("%s %s: is a file, not a SavedModel (expected a version directory holding "
                     "saved_model.pb, or a base directory of numeric versions)" % (flag, path))
  versions = numeric_versions(path)
  if not versions:
    raise UsageError("%s %s: not a SavedModel (no saved_model.pb) and no numeric version "
                     "directory holding one" % (flag, path))
  return os.path.join(path, str(versions[0]))


def read_export_info(version_dir, flag="--teacher_model"):
  """The settings an export recorded: labels, vocab, lower-casing, max_seq_length, bert_config."""
  path = os.path.join(version_dir, "assets.extra", INFO_FILE)
  if not os.path.isfile(path):
    raise UsageError("%s %s: no assets.extra/%s (not exported by this toolkit)" %
                     (flag, version_dir, INFO_FILE))
  try:
    with open(path, encoding="utf-8") as f:
      info = json.load(f)
  except ValueError as e:  # cut short, or not UTF-8
    raise UsageError("%s %s: %s is damaged (not valid JSON: %s); export it again" %
                     (flag, version_dir, path, e))
  if not isinstance(info, dict):
    raise UsageError("%s %s: %s is damaged (expected a JSON object); export it again" %
                     (flag, version_dir, path))
  info["vocab_file"] = os.path.join(version_dir, "assets", "vocab.txt")
  return info
