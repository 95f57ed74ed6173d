"""Transfer-set augmentation with rules that need no external model (Tang et al., 2019).

Each training text gives --augment_copies variants. A text is split into units: whitespace words
for spaced languages, single characters for CJK ideographs (a word mixing both is split into its
ideographs and the runs between them). Each unit is, independently, replaced by the mask token
with probability p_mask (`[MASK]`, or `[UNK]` when the vocab has no `[MASK]`), else by a unit
drawn from the training corpus with probability p_replace (a POS-free stand-in for Tang's
same-POS swap: words are replaced by words and ideographs by ideographs, drawn in proportion to
their corpus frequency to the power 0.75). Then, with probability p_ngram, only a random n-gram
of the result is kept, n uniform in [1, max_ngram]. Labels never enter the variants: they are
texts only, taught by the teacher's soft targets.

Variants are deterministic: example i's generator is seeded by (seed, i) alone, so the output
does not depend on the order of processing or on PYTHONHASHSEED. They are cached in output_dir
(augmented.txt, one example per line, `text_a<TAB>text_b` for sentence pairs) with a sidecar
fingerprint of the source file, the seed and the settings.
"""

import bisect
import collections
import json
import os
import random
import time

from bert import tokenization
from bert.errors import UsageError

# Bump when the rules change: cached variants of another version are rebuilt.
AUGMENT_VERSION = 1
AUGMENTED_FILE = "augmented.txt"
MASK_TOKEN = "[MASK]"
UNK_TOKEN = "[UNK]"
# Stands for a word the MLM will choose (never in text: a control character).
MLM_SLOT = "\x00"
MLM_TOP_K = 15
# Draws of a variant identical to its source before keeping it anyway (a one-word text may have
# no other variant the rules can reach).
MAX_ATTEMPTS = 10

Settings = collections.namedtuple(
    "Settings", ["copies", "seed", "mask_prob", "replace_prob", "ngram_prob", "max_ngram",
                 "min_length"], defaults=(0,))


def is_cjk(char):
  return tokenization._is_chinese_char(ord(char))  # pylint: disable=protected-access


def split_units(text):
  """Whitespace words, with CJK ideographs split into single characters.

  Returns:
    list of (unit, space_before): space_before says whether a space preceded the unit.
  """
  units = []
  for word in text.split():
    run, first = "", True
    for char in word:
      if is_cjk(char):
        if run:
          units.append((run, first))
          run, first = "", False
        units.append((char, first))
        first = False
      else:
        run += char
    if run:
      units.append((run, first))
  return units


def join_units(units):
  """Inverse of split_units (runs of whitespace become one space)."""
  return "".join((" " if space and i else "") + unit for i, (unit, space) in enumerate(units))


class _Pool(object):
  """Units drawn in proportion to count ** 0.75 (word2vec's smoothing: common words, not only)."""

  def __init__(self, counts):
    self.units = sorted(counts)  # sorted: the same draws whatever the order of the corpus
    total, self.cumulative = 0.0, []
    for unit in self.units:
      total += counts[unit] ** 0.75
      self.cumulative.append(total)

  def __bool__(self):
    return bool(self.units)

  def draw(self, rng):
    index = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
    return self.units[min(index, len(self.units) - 1)]


class Augmenter(object):
  """Masking, corpus-word replacement and n-gram sampling of one text at a time."""

  def __init__(self, corpus, mask_token=MASK_TOKEN, mask_prob=0.1, replace_prob=0.1,
               ngram_prob=0.25, max_ngram=5, mlm_predictable=None):
    """corpus: the texts whose units are drawn for replacement.

    mlm_predictable: optional unit → bool; a replaced unit for which it is true becomes an
    MLM_SLOT, filled in later by MlmFiller (TinyBERT's replacement), instead of a corpus draw.
    """
    self.mlm_predictable = mlm_predictable
    if not 0.0 <= mask_prob + replace_prob <= 1.0:
      raise UsageError("--augment_mask_prob + --augment_replace_prob: must be in [0, 1], got %s" %
                       (mask_prob + replace_prob))
    self.mask_token = mask_token
    self.mask_prob, self.replace_prob = mask_prob, replace_prob
    self.ngram_prob, self.max_ngram = ngram_prob, max_ngram
    words, ideographs = collections.Counter(), collections.Counter()
    for text in corpus:
      for unit, _ in split_units(text):
        (ideographs if len(unit) == 1 and is_cjk(unit) else words)[unit] += 1
    self.words, self.ideographs = _Pool(words), _Pool(ideographs)

  def augment(self, text, rng):
    """One variant of text, drawn with rng (a random.Random)."""
    units = []
    for unit, space in split_units(text):
      x = rng.random()
      if x < self.mask_prob:
        unit = self.mask_token
      elif x < self.mask_prob + self.replace_prob:
        pool = self.ideographs if len(unit) == 1 and is_cjk(unit) else self.words
        if self.mlm_predictable is not None and self.mlm_predictable(unit):
          unit = MLM_SLOT
        elif pool:
          unit = pool.draw(rng)
      units.append((unit, space))
    # Spaces around a mask: "[MASK][MASK]" in CJK text would read back as one unit.
    special = (self.mask_token, MLM_SLOT)
    units = [(u, s or u in special or (i and units[i - 1][0] in special))
             for i, (u, s) in enumerate(units)]
    if len(units) > 1 and rng.random() < self.ngram_prob:
      n = rng.randint(1, min(self.max_ngram, len(units)))
      start = rng.randrange(len(units) - n + 1)
      units = units[start:start + n]
    return join_units(units)

  def variants(self, index, text_a, text_b, copies, seed):
    """The `copies` variants of example `index`: [(text_a, text_b or None)]."""
    rng = random.Random("%d:%d" % (seed, index))  # str seeds hash with SHA-512: reproducible
    results = []
    for _ in range(copies):
      for _ in range(MAX_ATTEMPTS):
        variant = (self.augment(text_a, rng), self.augment(text_b, rng) if text_b else None)
        if variant != (text_a, text_b or None) and variant[0].strip():
          break
      if not variant[0].strip():
        variant = (text_a, variant[1])
      results.append(variant)
    return results


def unit_count(text_a, text_b=None):
  """Words (CJK: characters) of an example, both texts."""
  return sum(len(split_units(t)) for t in (text_a, text_b) if t)


def mask_token_for(vocab):
  """`[MASK]` when the vocab has it, else `[UNK]`."""
  return MASK_TOKEN if MASK_TOKEN in vocab else UNK_TOKEN


def fingerprint(source_file, settings, mask_token, source_sha256):
  return {"version": AUGMENT_VERSION, "source": os.path.abspath(source_file),
          "source_sha256": source_sha256, "settings": settings._asdict(), "mask_token": mask_token}


def write_augmented(output_dir, examples, settings, mask_token, fingerprint_value, log=print,
                    mlm=None):
  """Writes `copies` variants of each example to output_dir/augmented.txt, atomically.

  examples: the labelled InputExamples (only their texts are read); those shorter than
    settings.min_length units get no variants.
  mlm: an optional MlmFiller: replaced words it can predict are its choices (TinyBERT).
  Returns the number of variants written.
  """
  started = time.time()
  augmenter = Augmenter([t for e in examples for t in (e.text_a, e.text_b) if t], mask_token,
                        settings.mask_prob, settings.replace_prob, settings.ngram_prob,
                        settings.max_ngram, mlm_predictable=mlm.predictable if mlm else None)
  path = os.path.join(output_dir, AUGMENTED_FILE)
  os.makedirs(output_dir, exist_ok=True)
  temp = "%s.tmp-%d" % (path, os.getpid())
  lines = []
  sources = 0
  for index, example in enumerate(examples):
    if unit_count(example.text_a, example.text_b) < settings.min_length:
      continue
    sources += 1
    for text_a, text_b in augmenter.variants(index, example.text_a, example.text_b,
                                             settings.copies, settings.seed):
      lines.append(text_a + ("\t" + text_b if text_b is not None else ""))
  if examples and not sources:
    raise UsageError("--augment_min_length: no training text has %d words or more (the longest "
                     "has %d)" % (settings.min_length, max(unit_count(e.text_a, e.text_b)
                                                            for e in examples)))
  filled = 0
  if mlm is not None:
    lines, filled = mlm.fill(lines, settings.seed)
  count = len(lines)
  try:
    with open(temp, "w", encoding="utf-8") as f:
      for line in lines:
        f.write(line + "\n")
    with open(temp + ".json", "w", encoding="utf-8") as f:
      json.dump({"fingerprint": fingerprint_value, "num_examples": count}, f, indent=1,
                ensure_ascii=False)
  except BaseException:
    for leftover in (temp, temp + ".json"):
      if os.path.exists(leftover):
        os.remove(leftover)
    raise
  os.replace(temp, path)
  os.replace(temp + ".json", path + ".json")
  log("Augmented %d training texts%s into %d transfer examples (%d copies each, seed %d, "
      "mask %.2f, replace %.2f%s, n-gram %.2f) in %.1f s: %s" %
      (sources, " (of %d: those of >= %d words)" % (len(examples), settings.min_length)
       if settings.min_length else "", count, settings.copies, settings.seed, settings.mask_prob,
       settings.replace_prob, " (%d words chosen by the MLM)" % filled if mlm else "",
       settings.ngram_prob, time.time() - started, path))
  return count


def cached_augmented(output_dir, fingerprint_value):
  """output_dir/augmented.txt when its fingerprint matches, else None."""
  path = os.path.join(output_dir, AUGMENTED_FILE)
  try:
    with open(path + ".json", encoding="utf-8") as f:
      info = json.load(f)
  except (OSError, ValueError):
    return None
  if os.path.isfile(path) and info.get("fingerprint") == fingerprint_value:
    return path
  return None


class MaskAwareTokenizer(object):
  """A FullTokenizer that keeps a literal `[MASK]` (or `[UNK]`) in text as that one token.

  BERT's basic tokenizer would split `[MASK]` into `[`, `mask`, `]`.
  """

  def __init__(self, tokenizer, specials=(MASK_TOKEN, UNK_TOKEN)):
    self.tokenizer = tokenizer
    self.specials = [s for s in specials if s in tokenizer.vocab]

  def tokenize(self, text):
    pieces = [text]
    for special in self.specials:
      pieces = [p for piece in pieces for p in _split_keep(piece, special)]
    tokens = []
    for piece in pieces:
      if piece in self.specials:
        tokens.append(piece)
      else:
        tokens.extend(self.tokenizer.tokenize(piece))
    return tokens

  def convert_tokens_to_ids(self, tokens):
    return self.tokenizer.convert_tokens_to_ids(tokens)


def _split_keep(text, separator):
  if text == separator:
    return [text]
  parts = text.split(separator)
  result = []
  for i, part in enumerate(parts):
    if i:
      result.append(separator)
    if part:
      result.append(part)
  return result


class MlmFiller(object):
  """TinyBERT's word replacement: a pre-trained BERT's masked-LM head picks the new words.

  Needs a Google checkpoint with its MLM head (`cls/predictions/*`, as Google's pre-trained
  checkpoints have; a fine-tuned classifier or an export has none) and `bert_config.json` beside
  it. Every MLM_SLOT of a variant is masked, the variant goes through the model once, and each
  slot becomes one of the top_k wordpieces predicted there (whole words, no special tokens),
  drawn uniformly with a generator seeded by (seed, line number). Unlike TinyBERT, all slots of a
  variant are masked at once: one forward pass per variant instead of one per word.
  """

  def __init__(self, checkpoint, vocab_file, do_lower_case, top_k=MLM_TOP_K, max_seq_length=128,
               batch_size=64):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from bert import modeling  # pylint: disable=import-outside-toplevel
    tf1 = tf.compat.v1
    flag = "--augment_mlm_checkpoint %s" % checkpoint
    config_file = os.path.join(os.path.dirname(checkpoint), "bert_config.json")
    if not os.path.isfile(config_file):
      raise UsageError("%s: no bert_config.json beside it (%s)" % (flag, config_file))
    try:
      names = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as e:
      raise UsageError("%s: not a readable checkpoint (%s)" %
                       (flag, " ".join(str(e).split())[:160]))
    if "cls/predictions/output_bias" not in names:
      raise UsageError("%s: has no masked-LM head (cls/predictions/*); give a pre-trained Google "
                       "checkpoint such as bert_model.ckpt, not a fine-tuned one" % flag)
    self.config = modeling.BertConfig.from_json_file(config_file)
    self.tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
    if len(self.tokenizer.vocab) != self.config.vocab_size:
      raise UsageError("%s: vocab_size %d, but --vocab_file has %d tokens" %
                       (flag, self.config.vocab_size, len(self.tokenizer.vocab)))
    self.top_k, self.max_seq_length, self.batch_size = top_k, max_seq_length, batch_size
    inv = self.tokenizer.inv_vocab
    # Candidates: whole words only, no [CLS]/[MASK]/[unused0] and the like.
    self.allowed = np.array([not (inv[i].startswith("##") or
                                  (inv[i].startswith("[") and inv[i].endswith("]")))
                             for i in range(len(inv))])
    self.mask_id = self.tokenizer.vocab.get(MASK_TOKEN, self.tokenizer.vocab[UNK_TOKEN])
    self.graph = tf.Graph()
    with self.graph.as_default():
      self.ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
      self.mask = tf1.placeholder(tf.int32, [None, None], name="input_mask")
      self.positions = tf1.placeholder(tf.int32, [None], name="positions")  # in batch × seq
      model = modeling.BertModel(self.config, False, self.ids, self.mask)
      sequence = model.get_sequence_output()
      flat = tf.reshape(sequence, [-1, self.config.hidden_size])
      x = tf.gather(flat, self.positions)
      with tf1.variable_scope("cls/predictions"):
        with tf1.variable_scope("transform"):
          x = modeling.dense(x, self.config.hidden_size, "dense",
                             activation=modeling.get_activation(self.config.hidden_act))
          x = modeling.layer_norm(x, is_training=False)
        bias = tf1.get_variable("output_bias", [self.config.vocab_size])
      self.logits = tf.nn.bias_add(
          tf.matmul(x, model.get_embedding_table(), transpose_b=True), bias)
      saver = tf1.train.Saver(tf1.global_variables())
      self.graph.finalize()
      self.session = tf1.Session(graph=self.graph)
      saver.restore(self.session, checkpoint)
    self._np = np

  def predictable(self, unit):
    """Whether the unit is one wordpiece of the vocab (the MLM predicts one piece per mask)."""
    pieces = self.tokenizer.tokenize(unit)
    return len(pieces) == 1 and pieces[0] != UNK_TOKEN

  def _encode(self, line):
    """Token ids of a line ([CLS] a [SEP] (b [SEP])) and the indices of its MLM_SLOT masks."""
    ids, slots = [self.tokenizer.vocab["[CLS]"]], []
    for part in line.split("\t"):
      for i, piece in enumerate(part.split(MLM_SLOT)):
        if i:
          slots.append(len(ids))
          ids.append(self.mask_id)
        ids.extend(self.tokenizer.convert_tokens_to_ids(
            MaskAwareTokenizer(self.tokenizer).tokenize(piece)))
      ids.append(self.tokenizer.vocab["[SEP]"])
    keep = self.max_seq_length
    return ids[:keep], [s for s in slots if s < keep - 1], len(slots)

  def fill(self, lines, seed):
    """Lines with every MLM_SLOT replaced by a word the MLM predicts there.

    Returns (lines, number of words filled in).
    """
    np = self._np
    todo = [i for i, line in enumerate(lines) if MLM_SLOT in line]
    encoded = {i: self._encode(lines[i]) for i in todo}
    order = sorted(todo, key=lambda i: len(encoded[i][0]))
    choices = {}
    for start in range(0, len(order), self.batch_size):
      chosen = order[start:start + self.batch_size]
      width = max(len(encoded[i][0]) for i in chosen)
      ids = np.zeros([len(chosen), width], np.int32)
      mask = np.zeros([len(chosen), width], np.int32)
      positions = []
      for row, i in enumerate(chosen):
        tokens, slots, _ = encoded[i]
        ids[row, :len(tokens)] = tokens
        mask[row, :len(tokens)] = 1
        positions.extend(row * width + s for s in slots)
      if not positions:
        continue
      logits = self.session.run(self.logits, {self.ids: ids, self.mask: mask,
                                              self.positions: positions})
      logits = np.where(self.allowed[None, :], logits, -np.inf)
      top = np.argsort(-logits, axis=-1)[:, :self.top_k]
      row = 0
      for i in chosen:
        slots = encoded[i][1]
        choices[i] = [top[row + k] for k in range(len(slots))]
        row += len(slots)
    filled = 0
    result = list(lines)
    for i in todo:
      rng = random.Random("mlm:%d:%d" % (seed, i))
      words = [self.tokenizer.inv_vocab[int(rng.choice(list(candidates)))]
               for candidates in choices.get(i, [])]
      total = encoded[i][2]
      # Slots past max_seq_length (not predicted) keep the mask token.
      words += [MASK_TOKEN if MASK_TOKEN in self.tokenizer.vocab else UNK_TOKEN] * (
          total - len(words))
      parts = result[i].split(MLM_SLOT)
      result[i] = parts[0] + "".join(w + p for w, p in zip(words, parts[1:]))
      filled += len(choices.get(i, []))
    return result, filled

  def close(self):
    self.session.close()
