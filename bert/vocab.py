"""A vocab file's tokens, its fingerprint, and its checks against the model's config.

No TensorFlow here: the run's config checks the vocab before any graph is built.
"""

import collections
import hashlib

from bert import tokenization
from bert.errors import UsageError

REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[UNK]")


def vocab_tokens(vocab_file):
  """The vocab's tokens in id order (one per line, surrounding whitespace stripped)."""
  with open(vocab_file, encoding="utf-8") as f:
    return [line.strip() for line in f]


def vocab_fingerprint(vocab_file):
  """sha256 of the vocab's token list: the same tokens in the same order, whatever the line ends."""
  text = "\n".join(vocab_tokens(vocab_file))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_vocab(vocab_file, bert_config):
  """One-line UsageError for duplicated or missing tokens, or a size bert_config disagrees with."""
  vocab = tokenization.load_vocab(vocab_file)
  tokens = vocab_tokens(vocab_file)
  if len(vocab) != len(tokens):
    lines = collections.defaultdict(list)
    for number, token in enumerate(tokens, start=1):
      lines[token].append(number)
    duplicates = [(token, numbers) for token, numbers in lines.items() if len(numbers) > 1]
    shown = ", ".join("%r (lines %s)" % (token, ", ".join(map(str, numbers[:4])))
                      for token, numbers in duplicates[:5])
    raise UsageError("--vocab_file %s: has %d lines but %d distinct tokens: %d duplicated, %s%s "
                     "(each token must appear once: its line number is its id)" %
                     (vocab_file, len(tokens), len(vocab), len(duplicates), shown,
                      ", ..." if len(duplicates) > 5 else ""))
  for token in REQUIRED_TOKENS:
    if token not in vocab:
      raise UsageError("--vocab_file %s: has no %s token (a BERT vocab needs %s)" %
                       (vocab_file, token, " ".join(REQUIRED_TOKENS)))
  if len(vocab) != bert_config.vocab_size:
    raise UsageError("--vocab_file %s: has %d tokens but --bert_config_file says vocab_size %d" %
                     (vocab_file, len(vocab), bert_config.vocab_size))
