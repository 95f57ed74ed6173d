"""Runs an exported classifier in-process on raw text, the way tensorflow_model_server would.

The export carries everything needed: its vocab (assets/vocab.txt), lower-casing, max_seq_length
and label list (assets.extra/bert_export.json), so text is tokenized exactly as in training.
"""

import numpy as np

from bert import features, tokenization
from bert.loaded_export import LoadedExport


class ExportedClassifier(object):
  """A loaded SavedModel version plus its tokenizer and recorded settings."""

  def __init__(self, path, flag="--export_dir"):
    self.export = LoadedExport(path, flag=flag)
    self.version_dir = self.export.version_dir
    self.info = self.export.info
    self.labels = self.export.labels
    self.max_seq_length = int(self.info["max_seq_length"])
    self.tokenizer = tokenization.FullTokenizer(self.info["vocab_file"],
                                                self.info["do_lower_case"])
    self.graph, self.session = self.export.graph, self.export.session

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
    return self.export.run(batch)

  def predict(self, texts, text_pairs=None, batch_size=32):
    """Probabilities [len(texts), num_labels] of raw texts."""
    pairs = text_pairs or [None] * len(texts)
    results = [self.run(self.encode(texts[i:i + batch_size], pairs[i:i + batch_size]))
               ["probabilities"] for i in range(0, len(texts), batch_size)]
    return np.concatenate(results) if results else np.zeros([0, len(self.labels)], np.float32)

  def close(self):
    self.export.close()
