"""Examples and their token-id features, without TensorFlow.

Shared by the training pipeline (classifier_data) and by clients that must stay light
(scripts/predict_client.py imports no TensorFlow), so serving tokenizes exactly as training did.
"""

import numpy as np

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")


class InputExample(object):
  """One example: text_a, optional text_b, label (None if the file has none), and its source."""

  def __init__(self, guid, text_a, text_b=None, label=None, source=None):
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label
    self.source = source or guid


class InputFeatures(object):
  """Token ids of one example, unpadded; its input mask is all ones over len(input_ids)."""

  def __init__(self, input_ids, segment_ids, label_id, truncated=False):
    self.input_ids = input_ids
    self.segment_ids = segment_ids
    self.label_id = label_id
    self.truncated = truncated


def truncate_pair(tokens_a, tokens_b, max_length):
  """Pops tokens from the longer sequence until both fit; returns whether anything was cut."""
  truncated = False
  while len(tokens_a) + len(tokens_b) > max_length:
    longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    longer.pop()
    truncated = True
  return truncated


def convert_single_example(example, label_map, max_seq_length, tokenizer):
  """[CLS] a [SEP] (b [SEP]) → InputFeatures, truncated to max_seq_length tokens."""
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else []
  if tokens_b:
    truncated = truncate_pair(tokens_a, tokens_b, max_seq_length - 3)
  else:
    truncated = len(tokens_a) > max_seq_length - 2
    tokens_a = tokens_a[:max_seq_length - 2]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  label_id = label_map[example.label] if example.label is not None else 0
  return InputFeatures(input_ids, segment_ids, label_id, truncated)


def convert_examples_to_features(examples, label_list, max_seq_length, tokenizer):
  label_map = {label: i for i, label in enumerate(label_list)}
  return [convert_single_example(e, label_map, max_seq_length, tokenizer) for e in examples]


def pad_features(features):
  """Features padded to the longest of them.

  Returns:
    {input_ids, input_mask, segment_ids}: int32 [len(features), longest]; the mask is 1 over
    the real tokens.
  """
  longest = max(len(f.input_ids) for f in features)
  batch = {name: np.zeros([len(features), longest], np.int32) for name in INPUT_NAMES}
  for row, feature in enumerate(features):
    length = len(feature.input_ids)
    batch["input_ids"][row, :length] = feature.input_ids
    batch["segment_ids"][row, :length] = feature.segment_ids
    batch["input_mask"][row, :length] = 1
  return batch
