"""WordPiece tokenization compatible with Google BERT's public vocabularies.

Pure Python on purpose: data preparation and tests should not need to import
TensorFlow just to split text. The behaviour mirrors Google's reference
tokenizer so that token ids line up with the released checkpoints.
"""

import collections
import os
import re
import unicodedata

# Checkpoint directory names whose casing is known from Google's releases.
_LOWER_CASED_MODELS = frozenset([
    "uncased_L-24_H-1024_A-16",
    "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
])
_CASED_MODELS = frozenset([
    "cased_L-12_H-768_A-12",
    "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12",
])
_CHECKPOINT_NAME_RE = re.compile(r"^.*?([A-Za-z0-9_-]+)/bert_model.ckpt")

# CJK Unified Ideographs blocks. Hangul and Japanese kana are deliberately
# absent: those scripts use spaces, so whitespace splitting already works.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# ASCII symbols such as "$", "^" and "`" are not Unicode category P*, but BERT
# vocabularies were built treating them as punctuation.
_ASCII_PUNCT_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Fail fast when the casing flag contradicts a known Google checkpoint.

  A wrong flag silently degrades accuracy rather than crashing, so it is
  worth catching up front. Unknown checkpoint names cannot be checked and
  are accepted.
  """
  if not init_checkpoint:
    return
  match = _CHECKPOINT_NAME_RE.match(init_checkpoint)
  if match is None:
    return
  model_name = match.group(1)

  if model_name in _LOWER_CASED_MODELS and not do_lower_case:
    trained = "lower-cased"
  elif model_name in _CASED_MODELS and do_lower_case:
    trained = "cased"
  else:
    return
  raise ValueError("--do_lower_case=%s contradicts --init_checkpoint %s: Google's %s was "
                   "pre-trained on %s text (expected --do_lower_case=%s)" %
                   (do_lower_case, init_checkpoint, model_name, trained, not do_lower_case))


def convert_to_unicode(text):
  """Accept both str and utf-8 bytes, since input files come from many sources."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError("Unsupported string type: %s" % (type(text),))


def printable_text(text):
  """Text suitable for print/logging; identical to unicode on Python 3."""
  return convert_to_unicode(text)


def load_vocab(vocab_file):
  """Map token -> id, where the id is the token's line number in the file."""
  if not os.path.isfile(vocab_file):
    raise ValueError("--vocab_file %s: file not found" % (vocab_file,))
  vocab = collections.OrderedDict()
  with open(vocab_file, "r", encoding="utf-8") as reader:
    for index, line in enumerate(reader):
      vocab[convert_to_unicode(line).strip()] = index
  return vocab


def convert_by_vocab(vocab, items):
  """Look every item up; a missing key is a caller bug, so let KeyError surface."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Split on runs of whitespace, ignoring leading/trailing blanks."""
  text = text.strip()
  if not text:
    return []
  return text.split()


class FullTokenizer(object):
  """Basic (punctuation/case) splitting followed by WordPiece, as BERT expects."""

  def __init__(self, vocab_file, do_lower_case=True):
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {index: token for token, index in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)

  def tokenize(self, text):
    split_tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
    return split_tokens

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)


class BasicTokenizer(object):
  """Vocabulary-free splitting: cleanup, CJK isolation, casing, punctuation."""

  def __init__(self, do_lower_case=True):
    self.do_lower_case = do_lower_case

  def tokenize(self, text):
    text = _clean_text(convert_to_unicode(text))
    # CJK text has no spaces, so isolate each ideograph before splitting.
    text = _tokenize_chinese_chars(text)
    split_tokens = []
    for token in whitespace_tokenize(text):
      if self.do_lower_case:
        token = _strip_accents(token.lower())
      split_tokens.extend(_split_on_punc(token))
    return whitespace_tokenize(" ".join(split_tokens))


class WordpieceTokenizer(object):
  """Greedy longest-match-first subword splitting against a fixed vocabulary."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Expects text already split by BasicTokenizer.

    A word that cannot be covered entirely maps to a single unk token
    rather than partial pieces, so the model never sees half a word.
    """
    output_tokens = []
    for token in whitespace_tokenize(convert_to_unicode(text)):
      if len(token) > self.max_input_chars_per_word:
        output_tokens.append(self.unk_token)
        continue
      pieces = _wordpiece_split(token, self.vocab)
      if pieces is None:
        output_tokens.append(self.unk_token)
      else:
        output_tokens.extend(pieces)
    return output_tokens


def _wordpiece_split(word, vocab):
  """Return the pieces of word, or None if some suffix matches nothing."""
  pieces = []
  start = 0
  while start < len(word):
    end = len(word)
    piece = None
    while start < end:
      candidate = word[start:end]
      if start > 0:
        candidate = "##" + candidate
      if candidate in vocab:
        piece = candidate
        break
      end -= 1
    if piece is None:
      return None
    pieces.append(piece)
    start = end
  return pieces


def _clean_text(text):
  """Drop invalid/control characters and normalize every whitespace to a space."""
  output = []
  for char in text:
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or _is_control(char):
      continue
    output.append(" " if _is_whitespace(char) else char)
  return "".join(output)


def _tokenize_chinese_chars(text):
  return "".join(" %s " % char if _is_chinese_char(ord(char)) else char for char in text)


def _is_chinese_char(cp):
  return any(low <= cp <= high for low, high in _CJK_RANGES)


def _strip_accents(text):
  """Uncased vocabularies were built without combining marks."""
  text = unicodedata.normalize("NFD", text)
  return "".join(char for char in text if unicodedata.category(char) != "Mn")


def _split_on_punc(text):
  """Make every punctuation character its own token, keeping other runs intact."""
  output = []
  start_new_word = True
  for char in text:
    if _is_punctuation(char):
      output.append([char])
      start_new_word = True
    else:
      if start_new_word:
        output.append([])
      start_new_word = False
      output[-1].append(char)
  return ["".join(chars) for chars in output]


def _is_whitespace(char):
  # \t, \n and \r are control characters in Unicode but act as spaces in text.
  if char in (" ", "\t", "\n", "\r"):
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  # Treated as whitespace instead (see _is_whitespace).
  if char in ("\t", "\n", "\r"):
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  cp = ord(char)
  if any(low <= cp <= high for low, high in _ASCII_PUNCT_RANGES):
    return True
  return unicodedata.category(char).startswith("P")
