#!/usr/bin/env python3
"""Build a WordPiece vocabulary for models trained from scratch.

The vocabulary is made to be read by `bert.tokenization.FullTokenizer`:

  1. the special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]`, in that order, so
     `[PAD]` has id 0 as in Google's BERT vocabularies;
  2. every token `BasicTokenizer(do_lower_case)` produces at least
     `--min_count` times (CJK characters come out one per token, punctuation
     characters are tokens of their own, other runs stay whole words);
  3. single-character pieces, so that words not frequent enough to be kept
     whole are split rather than lost: for every character occurring at least
     `--min_count` times in the corpus, its word-initial form (`a`) if it
     starts some word and its continuation form (`##b`) if it appears inside
     some word.  A rare word made only of frequent characters is thus split
     into pieces by the WordPiece tokenizer instead of becoming `[UNK]`; a
     word holding a rare character still maps to `[UNK]`.

After the specials, tokens are ordered by descending count, ties broken by
the token string, so the output only depends on the input.  `--max_size`
(if > 0) caps the total size, specials included.

Input files are in the `text&label` format of the `emotion` task (the label
after the last `&` is dropped) or, with `--text_only`, plain text lines.

Usage (from the repository root):
    python scripts/build_vocab.py --input data/demo/train.csv \
        --output vocab.txt [--min_count 2] [--do_lower_case true] [--max_size 0]
"""

import argparse
import collections
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from bert import tokenization  # noqa: E402

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNK_TOKEN = "[UNK]"
# WordpieceTokenizer maps longer words to [UNK] whatever the vocabulary holds.
MAX_WORD_CHARS = 200


def count_tokens(lines, do_lower_case=True):
  """Counter of BasicTokenizer tokens over the given texts."""
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  counts = collections.Counter()
  for line in lines:
    counts.update(basic.tokenize(line))
  return counts


def build_vocab(lines, min_count=2, do_lower_case=True, max_size=0):
  """Return the vocabulary (a list of tokens, index = id) for the texts."""
  return build_vocab_from_counts(count_tokens(lines, do_lower_case),
                                 min_count=min_count,
                                 max_size=max_size)


def build_vocab_from_counts(word_counts, min_count=2, max_size=0):
  """Same as build_vocab, from a Counter of BasicTokenizer tokens."""
  if min_count < 1:
    raise ValueError("min_count must be >= 1")
  if max_size and max_size < len(SPECIAL_TOKENS):
    raise ValueError("max_size must be 0 or at least %d" % len(SPECIAL_TOKENS))

  # How often each character occurs anywhere, and in which word positions.
  char_counts = collections.Counter()
  initial_chars = set()
  continuation_chars = set()
  for word, count in word_counts.items():
    for char in word:
      char_counts[char] += count
    if len(word) <= MAX_WORD_CHARS:
      initial_chars.add(word[0])
      continuation_chars.update(word[1:])

  candidates = {}
  for word, count in word_counts.items():
    if count >= min_count and len(word) <= MAX_WORD_CHARS:
      candidates[word] = count
  # A frequent character gets a piece for each position it is seen in, so
  # every word made only of frequent characters can be rebuilt from pieces.
  for char, count in char_counts.items():
    if count < min_count:
      continue
    if char in initial_chars:
      candidates[char] = max(count, candidates.get(char, 0))
    if char in continuation_chars:
      candidates["##" + char] = count

  specials = set(SPECIAL_TOKENS)
  ordered = sorted((token for token in candidates if token not in specials),
                   key=lambda token: (-candidates[token], token))
  vocab = SPECIAL_TOKENS + ordered
  if max_size:
    vocab = vocab[:max_size]
  return vocab


def write_vocab(path, vocab):
  """One token per line (line number = id), written atomically."""
  for token in vocab:
    if not token or token != token.strip() or "\n" in token or "\r" in token:
      raise ValueError("token cannot be stored in a vocab file: %r" % (token,))
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                  suffix=".tmp",
                                  dir=directory)
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as writer:
      writer.write("".join(token + "\n" for token in vocab))
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.unlink(tmp_path)
    raise


def unk_rate(word_counts, vocab_file, do_lower_case=True):
  """(unk_count, total_count) of FullTokenizer's output over a corpus.

  FullTokenizer runs WordPiece on each BasicTokenizer token independently,
  so tokenizing each distinct token once and weighting by its count gives
  exactly the counts of tokenizing every line, at a fraction of the cost.
  """
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
  unk = total = 0
  for word, count in word_counts.items():
    pieces = tokenizer.wordpiece_tokenizer.tokenize(word)
    total += count * len(pieces)
    unk += count * sum(1 for piece in pieces if piece == UNK_TOKEN)
  return unk, total


def read_texts(paths, text_only=False):
  """Texts from `text&label` files (label stripped) or plain text files."""
  texts = []
  skipped = 0
  for path in paths:
    with open(path, "r", encoding="utf-8") as reader:
      for line in reader:
        line = line.rstrip("\r\n")
        if not line.strip():
          continue
        if not text_only:
          text, sep, _label = line.rpartition("&")
          if not sep:
            skipped += 1
            continue
          line = text
        texts.append(line)
  if skipped:
    print("warning: skipped %d lines without '&label'" % skipped, file=sys.stderr)
  return texts


def str2bool(value):
  lowered = str(value).strip().lower()
  if lowered in ("1", "true", "t", "yes", "y"):
    return True
  if lowered in ("0", "false", "f", "no", "n"):
    return False
  raise argparse.ArgumentTypeError("expected true or false, got %r" % (value,))


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      description="Build a BERT WordPiece vocabulary from training texts.")
  parser.add_argument("--input",
                      nargs="+",
                      required=True,
                      help="text&label files (or plain text with --text_only)")
  parser.add_argument("--text_only",
                      action="store_true",
                      help="inputs are plain text lines, no &label suffix")
  parser.add_argument("--output", required=True, help="vocab file to write")
  parser.add_argument("--min_count", type=int, default=2)
  parser.add_argument("--do_lower_case", type=str2bool, default=True)
  parser.add_argument("--max_size",
                      type=int,
                      default=0,
                      help="cap on the vocabulary size, specials included; 0 = none")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  for path in args.input:
    if not os.path.isfile(path):
      print("error: input file not found: %s" % path, file=sys.stderr)
      return 1
  texts = read_texts(args.input, text_only=args.text_only)
  word_counts = count_tokens(texts, do_lower_case=args.do_lower_case)
  try:
    vocab = build_vocab_from_counts(word_counts, min_count=args.min_count, max_size=args.max_size)
  except ValueError as error:
    print("error: %s" % error, file=sys.stderr)
    return 2
  write_vocab(args.output, vocab)
  unk, total = unk_rate(word_counts, args.output, do_lower_case=args.do_lower_case)
  print("wrote %s" % args.output)
  print("vocab size: %d" % len(vocab))
  print("training tokens mapped to [UNK]: %d of %d (%.4f%%)" %
        (unk, total, 100.0 * unk / total if total else 0.0))
  return 0


if __name__ == "__main__":
  sys.exit(main())
