"""Runs an exported classifier in-process on raw text, the way tensorflow_model_server would.

The export carries everything needed: its vocab (assets/vocab.txt), lower-casing, max_seq_length
and label list (assets.extra/bert_export.json), so text is tokenized exactly as in training.
"""

import numpy as np
import tensorflow as tf

from bert import export_layout, features, text_signature, tokenization

tf1 = tf.compat.v1


class ExportedClassifier(object):
  """A loaded SavedModel version plus its tokenizer and recorded settings."""

  def __init__(self, path, flag="--export_dir"):
    self.version_dir = export_layout.resolve_version_dir(path, flag=flag)
    self.info = export_layout.read_export_info(self.version_dir, flag=flag)
    self.labels = list(self.info["labels"])
    self.max_seq_length = int(self.info["max_seq_length"])
    self.tokenizer = tokenization.FullTokenizer(self.info["vocab_file"],
                                                self.info["do_lower_case"])
    # An export with the raw-text signature holds TensorFlow Text ops; serving_default does not.
    text_signature.require_ops(self.info, "%s %s" % (flag, self.version_dir))
    self.graph = tf.Graph()
    self.session = tf1.Session(graph=self.graph)
    with self.graph.as_default():
      meta_graph = tf1.saved_model.loader.load(self.session, [export_layout.SERVE_TAG],
                                               self.version_dir)
    signature = meta_graph.signature_def[export_layout.SIGNATURE_KEY]
    self.inputs = {name: info.name for name, info in signature.inputs.items()}
    self.outputs = {name: info.name for name, info in signature.outputs.items()}

  def encode(self, texts, text_pairs=None):
    """Token ids of texts, padded to the longest.

    Returns:
      {input_ids, input_mask, segment_ids}: int32 [len(texts), longest].
    """
    pairs = text_pairs or [None] * len(texts)
    return features.pad_features([
        features.convert_single_example(features.InputExample(str(i), text, pair), {},
                                        self.max_seq_length, self.tokenizer)
        for i, (text, pair) in enumerate(zip(texts, pairs))])

  def run(self, batch):
    """Runs the serving signature on encoded inputs; returns {output name: array}."""
    feed = {self.inputs[name]: batch[name] for name in self.inputs}
    return self.session.run(self.outputs, feed)

  def predict(self, texts, text_pairs=None, batch_size=32):
    """Probabilities [len(texts), num_labels] of raw texts."""
    pairs = text_pairs or [None] * len(texts)
    results = [self.run(self.encode(texts[i:i + batch_size], pairs[i:i + batch_size]))
               ["probabilities"] for i in range(0, len(texts), batch_size)]
    return np.concatenate(results) if results else np.zeros([0, len(self.labels)], np.float32)

  def close(self):
    self.session.close()
