"""The one way this toolkit loads an exported SavedModel in Python.

Used by the in-process predictor, the client's --local mode, the distiller's teacher and the
benchmarks: a version directory (or a base directory: its newest version), its recorded settings
(assets.extra/bert_export.json), the TensorFlow Text ops its raw-text signature needs, and every
signature's input and output tensor names, in a graph and session of its own (as
tensorflow_model_server holds a model).
"""

import tensorflow as tf

from bert import export_layout, text_signature
from bert.errors import UsageError, one_line_message

tf1 = tf.compat.v1


def serving_session_config(info, threads=0):
  """The session config scripts/serve.sh gives tensorflow_model_server for an export: its recorded
  intra-op threads (1: each op on one thread; 0: `threads`) and `threads` inter-op threads
  (0: TensorFlow's default, every core). Give it to a process's first session: TensorFlow makes
  its intra-op pool once per process, with the first session's setting."""
  return tf1.ConfigProto(
      intra_op_parallelism_threads=int(info.get("serving_intra_op_threads") or threads),
      inter_op_parallelism_threads=int(threads))


class LoadedExport(object):
  """A SavedModel version loaded into its own graph and session.

  Attributes:
    version_dir: the numeric version directory that was loaded.
    info: its recorded settings (labels, vocab_file, do_lower_case, max_seq_length, ...).
    graph, session: where it lives.
    signatures: {signature key: ({input name: tensor name}, {output name: tensor name})}.
  """

  def __init__(self, path, flag="--export_dir", session_config=None):
    """flag: the command-line flag that named `path`, for error messages."""
    self.version_dir = export_layout.resolve_version_dir(path, flag=flag)
    self.info = export_layout.read_export_info(self.version_dir, flag=flag)
    where = "%s %s" % (flag, self.version_dir)
    # An export with the raw-text signature holds TensorFlow Text ops; serving_default does not.
    text_signature.require_ops(self.info, where)
    self.graph = tf.Graph()
    self.session = tf1.Session(graph=self.graph, config=session_config)
    with self.graph.as_default():
      try:
        meta_graph = tf1.saved_model.loader.load(self.session, [export_layout.SERVE_TAG],
                                                 self.version_dir)
      except (tf.errors.OpError, OSError, RuntimeError) as e:  # truncated variables, bad .pb
        self.session.close()
        raise UsageError("%s: cannot be loaded (%s); its files are damaged: export the %s again" %
                         (where, one_line_message(e)[:300],
                          "teacher" if flag == "--teacher_model" else "model"))
    self.meta_graph = meta_graph
    self.signatures = {
        key: ({name: info.name for name, info in signature.inputs.items()},
              {name: info.name for name, info in signature.outputs.items()})
        for key, signature in meta_graph.signature_def.items()}
    if export_layout.SIGNATURE_KEY not in self.signatures:
      self.close()
      raise UsageError("%s: has no %r signature (has %s)" %
                       (where, export_layout.SIGNATURE_KEY, ", ".join(sorted(self.signatures))))
    self._where = where

  @property
  def labels(self):
    return list(self.info["labels"])

  def inputs(self, signature=export_layout.SIGNATURE_KEY):
    """{input name: tf.Tensor} of a signature."""
    return {name: self.graph.get_tensor_by_name(tensor)
            for name, tensor in self._signature(signature)[0].items()}

  def outputs(self, signature=export_layout.SIGNATURE_KEY):
    """{output name: tf.Tensor} of a signature."""
    return {name: self.graph.get_tensor_by_name(tensor)
            for name, tensor in self._signature(signature)[1].items()}

  def run(self, feed, signature=export_layout.SIGNATURE_KEY, outputs=None):
    """Runs a signature: feed {input name: array}; returns {output name: array}.

    Entries of feed that are not inputs of the signature (label_ids of a feature batch) are
    left out. outputs: the output names wanted (default all).
    """
    inputs, all_outputs = self._signature(signature)
    wanted = {name: all_outputs[name] for name in (outputs or all_outputs)}
    return self.session.run(wanted, {inputs[name]: value for name, value in feed.items()
                                     if name in inputs})

  def _signature(self, key):
    if key not in self.signatures:
      raise UsageError("%s: no signature %r (has %s)" %
                       (self._where, key, ", ".join(sorted(self.signatures))))
    return self.signatures[key]

  def close(self):
    self.session.close()
