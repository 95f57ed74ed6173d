"""The `text` serving signature: raw strings in, Google BERT's tokenization inside the graph.

Signature `text` (beside the unchanged id signature `serving_default`):
  inputs:  text_a string [-1]; text_b string [-1], optional (omitted: every row a single text).
  outputs: probabilities float32 [-1, num_labels], logits float32 [-1, num_labels],
           label_ids int32 [-1], labels string [-1] (the label names), num_tokens int32 [-1]
           (WordPiece tokens of text_a + text_b before truncation, no [CLS]/[SEP]),
           truncated bool [-1] (num_tokens did not fit max_seq_length).

The graph does what tokenization.FullTokenizer + features.convert_single_example do, with the
export's vocab asset (assets/vocab.txt): invalid UTF-8 dropped, control and format characters
(Cc, Cf; not \\t \\n \\r) and U+FFFD deleted, every Zs character, \\t \\n \\r and the other
characters Python's str.split() splits on made spaces, one token per CJK ideograph, lower-casing,
NFD and removal of combining marks (Mn) when do_lower_case, punctuation split off, WordPiece
(a word over 200 characters is [UNK]), Google's pair truncation (the longer text loses a token at
a time) to max_seq_length, [CLS] a [SEP] (b [SEP]) with segment ids, each request padded to its
longest row. The character classes are written into the graph from Python's unicodedata (the
same tables FullTokenizer uses); lower-casing (ICU, full case mapping) and NFD (ICU, through
TensorFlow Text) are the only Unicode tables taken from the libraries.

A text (or pair) with nothing left after tokenization is not an error: it is [CLS] [SEP], as
FullTokenizer and the training features encode it, with num_tokens 0 (a client can tell it apart).

Ops: core TensorFlow plus NormalizeUTF8 and WordpieceTokenizeWithOffsets, which
tensorflow_model_server links (TensorFlow Text's op library) since 2.2 with the attributes used
here (MIN_SERVER_VERSION). RoundRobinTrimmer (server >= 2.20), FastBertTokenizer (>= 2.12) and
RegexSplitWithOffsets are not used: truncation is done with core ragged ops and splitting with
StaticRegexReplace + StringSplitV2.
"""

import functools
import unicodedata

import tensorflow as tf

from bert import classifier, tokenization
from bert.errors import UsageError

tf1 = tf.compat.v1

TEXT_SIGNATURE_KEY = "text"
TEXT_INPUTS = ("text_a", "text_b")
TEXT_OUTPUTS = ("probabilities", "logits", "label_ids", "labels", "num_tokens", "truncated")
TEXT_SCOPE = "text"
# The oldest tensorflow_model_server that links every op of the text signature (see module doc).
MIN_SERVER_VERSION = "2.2"
# The TensorFlow Text ops the signature uses.
TEXT_OPS = frozenset(["NormalizeUTF8", "WordpieceTokenizeWithOffsets"])
# Every op TensorFlow Text 2.2.0 registers (tensorflow_text/core/ops/*.cc at tag v2.2.0): what
# tensorflow_model_server 2.2 links beyond core TensorFlow.
SERVER_TEXT_OPS = {
    "2.2": frozenset([
        "CaseFoldUTF8", "ConstrainedSequence", "MaxSpanningTree", "NormalizeUTF8",
        "RegexSplitWithOffsets", "RougeL", "SentenceFragments", "SentencepieceDetokenizeOp",
        "SentencepieceIdToStringOp", "SentencepieceOp", "SentencepieceTokenizeOp",
        "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp",
        "SplitMergeTokenizeWithOffsets", "UnicodeScriptTokenizeWithOffsets",
        "WhitespaceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets"]),
}
# tokenization.WordpieceTokenizer's limit (Google's): a longer word is one [UNK].
MAX_CHARS_PER_WORD = 200
REQUIREMENT = "tensorflow-text>=2.16,<2.22"

_LOGGED = []


def _register():
  try:
    import tensorflow_text  # noqa: F401  (registers its ops, so exports holding them load)
  except ImportError:
    pass


_register()


def text_ops():
  """The tensorflow_text module (its ops registered), or None when it is not installed."""
  try:
    import tensorflow_text
  except ImportError:
    return None
  return tensorflow_text


def has_text_signature(info):
  """Whether an export's recorded settings (bert_export.json) say it has the text signature."""
  return bool(info.get("text_signature"))


def require_ops(info, where):
  """Registers the TensorFlow Text ops an export with the text signature needs before loading.

  Raises:
    UsageError: the export has the text signature and tensorflow-text is not installed.
  """
  if has_text_signature(info) and text_ops() is None:
    raise UsageError("%s: has the raw-text signature %r, whose ops need the tensorflow-text "
                     "package to load (pip install '%s')" % (where, TEXT_SIGNATURE_KEY,
                                                            REQUIREMENT))


def _ranges_class(codepoints):
  """An RE2 character class of the sorted code points."""
  ranges = []
  for cp in codepoints:
    if ranges and ranges[-1][1] == cp - 1:
      ranges[-1][1] = cp
    else:
      ranges.append([cp, cp])
  return "[%s]" % "".join("\\x{%X}" % a if a == b else "\\x{%X}-\\x{%X}" % (a, b)
                          for a, b in ranges)


@functools.lru_cache(maxsize=None)
def character_classes():
  """RE2 classes of FullTokenizer's character kinds, from this Python's unicodedata.

  Returns:
    {"delete": removed characters (NUL, U+FFFD, Cc and Cf but \\t \\n \\r), "space": characters
     that separate words (Zs, \\t \\n \\r, and what str.split() also splits on, e.g. U+2028),
     "cjk": ideographs made one token each, "punct": punctuation (P* and ASCII symbols),
     "mark": combining marks (Mn) removed after NFD when lower-casing}.
  """
  kinds = {name: [] for name in ("delete", "space", "cjk", "punct", "mark")}
  for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
      continue
    char = chr(cp)
    if cp == 0 or cp == 0xFFFD or tokenization._is_control(char):
      kinds["delete"].append(cp)
      continue
    if tokenization._is_whitespace(char) or char.isspace():
      kinds["space"].append(cp)
    if tokenization._is_chinese_char(cp):
      kinds["cjk"].append(cp)
    if tokenization._is_punctuation(char):
      kinds["punct"].append(cp)
    if unicodedata.category(char) == "Mn":
      kinds["mark"].append(cp)
  return {name: _ranges_class(cps) for name, cps in kinds.items()}


def vocab_problem(vocab_file):
  """Why the vocab file cannot be read by a TextFileInitializer as load_vocab reads it, or None."""
  with open(vocab_file, encoding="utf-8") as f:
    lines = f.read().split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  seen = set()
  for number, line in enumerate(lines, 1):
    if line != line.strip():
      return "line %d has surrounding whitespace" % number
    if line in seen:
      return "line %d repeats %r" % (number, line)
    seen.add(line)
  for token in ("[CLS]", "[SEP]", "[UNK]"):
    if token not in seen:
      return "no %s token" % token
  return None


def tokenize(text, vocab_table, do_lower_case, tf_text):
  """FullTokenizer in the graph.

  Args:
    text: string [batch].
    vocab_table: a lookup table token → id (int64) of the vocab.
  Returns:
    int64 RaggedTensor [batch, (tokens)]: the WordPiece ids of each text.
  """
  classes = character_classes()
  text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="ignore")
  text = tf.strings.regex_replace(text, classes["delete"], "")
  text = tf.strings.regex_replace(text, classes["space"], " ")
  text = tf.strings.regex_replace(text, "(%s)" % classes["cjk"], " \\1 ")
  if do_lower_case:
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf_text.normalize_utf8(text, "NFD")
    text = tf.strings.regex_replace(text, classes["mark"], "")
  text = tf.strings.regex_replace(text, "(%s)" % classes["punct"], " \\1 ")
  words = tf.strings.split(text)  # on " " (the only ASCII whitespace left)
  too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
  words = words.with_flat_values(tf.where(too_long, "[UNK]", words.flat_values))
  wordpiece = tf_text.WordpieceTokenizer(vocab_table, max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
                                         token_out_type=tf.int64, unknown_token="[UNK]")
  return wordpiece.tokenize(words).merge_dims(1, 2)


def truncated_lengths(len_a, len_b, max_seq_length):
  """How many tokens of each text features.convert_single_example keeps.

  Google's loop pops a token from the longer text (text_b on a tie) until both fit in
  max_seq_length - 3; in closed form kept_b = min(len_b, max(budget - len_a, budget // 2)),
  kept_a = min(len_a, budget - kept_b). A text_b with no tokens is a single text (budget
  max_seq_length - 2, one [SEP]).

  Args:
    len_a, len_b: int [batch]: token counts.
  Returns:
    (kept_a, kept_b): int [batch].
  """
  budget = tf.where(len_b > 0, tf.cast(max_seq_length - 3, len_b.dtype),
                    tf.cast(max_seq_length - 2, len_b.dtype))
  kept_b = tf.minimum(len_b, tf.maximum(budget - len_a, budget // 2))
  kept_a = tf.minimum(len_a, budget - kept_b)
  return kept_a, kept_b


def _first(ragged, count):
  """The first count[i] values of row i of a RaggedTensor [batch, (n)]."""
  keep = tf.ragged.range(ragged.row_lengths()) < tf.expand_dims(count, 1)
  return tf.ragged.boolean_mask(ragged, keep)


def encode(text_a, text_b, vocab_table, do_lower_case, max_seq_length, tf_text):
  """Model inputs of raw texts, as features.convert_single_example + pad_features make them.

  Args:
    text_a, text_b: string [batch] (text_b "" for a single text).
  Returns:
    {input_ids, input_mask, segment_ids}: int32 [batch, longest], zero-padded;
    num_tokens: int32 [batch]: tokens of both texts before truncation; truncated: bool [batch].
  """
  tokens_a = tokenize(text_a, vocab_table, do_lower_case, tf_text)
  tokens_b = tokenize(text_b, vocab_table, do_lower_case, tf_text)
  len_a, len_b = tokens_a.row_lengths(), tokens_b.row_lengths()
  kept_a, kept_b = truncated_lengths(len_a, len_b, max_seq_length)
  has_b = tf.cast(len_b > 0, tf.int64)
  batch = tf.shape(text_a, out_type=tf.int64)[0]

  def special(token, count):
    ids = tf.fill([batch], vocab_table.lookup(tf.constant(token)))
    return tf.RaggedTensor.from_row_lengths(tf.repeat(ids, count), count)

  ones = tf.ones([batch], tf.int64)
  parts = [special("[CLS]", ones), _first(tokens_a, kept_a), special("[SEP]", ones),
           _first(tokens_b, kept_b), special("[SEP]", has_b)]
  ids = tf.concat(parts, axis=1)
  segments = tf.concat([tf.zeros_like(parts[0]), tf.zeros_like(parts[1]), tf.zeros_like(parts[2]),
                        tf.ones_like(parts[3]), tf.ones_like(parts[4])], axis=1)
  return {"input_ids": tf.cast(ids.to_tensor(0), tf.int32),
          "input_mask": tf.cast(tf.ones_like(ids).to_tensor(0), tf.int32),
          "segment_ids": tf.cast(segments.to_tensor(0), tf.int32),
          "num_tokens": tf.cast(len_a + len_b, tf.int32),
          "truncated": (kept_a + kept_b) < (len_a + len_b)}


def build_text_signature(bert_config, label_list, vocab_asset, do_lower_case, max_seq_length,
                         temperature=1.0, row_blocks=True):
  """The text signature's placeholders and outputs in the current graph (the classifier built).

  The classifier is built a second time under TEXT_SCOPE on the tokenized inputs, every variable
  taken from the first build (none is created): serving_default's ops and the teacher frozen from
  them hold no tokenizer op.

  Args:
    vocab_asset: string scalar tensor, the vocab file's path (an ASSET_FILEPATHS entry).
    row_blocks: see modeling.BertModel.
  Returns:
    (signature_def, table initializer op), or None when tensorflow-text is not installed (logged
    once per process).
  """
  tf_text = text_ops()
  if tf_text is None:
    if not _LOGGED:
      _LOGGED.append(True)
      print("Exporting without the raw-text signature %r: tensorflow-text is not installed "
            "(pip install '%s')" % (TEXT_SIGNATURE_KEY, REQUIREMENT), flush=True)
    return None
  existing = {v.op.name: v for v in tf1.global_variables()}

  def reuse(getter, name, *args, **kwargs):
    del getter, args, kwargs
    return existing[name.split("/", 1)[1]]  # a KeyError: the text path made a new variable

  with tf1.variable_scope(TEXT_SCOPE, custom_getter=reuse):
    text_a = tf1.placeholder(tf.string, [None], name="text_a")
    text_b = tf1.placeholder_with_default(tf.fill(tf.shape(text_a), ""), [None], name="text_b")
    same_rows = tf.debugging.assert_equal(
        tf.shape(text_a), tf.shape(text_b),
        message="text_b must have as many rows as text_a (or be left out)")
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(vocab_asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                      tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
    with tf.control_dependencies([same_rows]):
      encoded = encode(tf.identity(text_a), tf.identity(text_b), table, do_lower_case,
                       max_seq_length, tf_text)
    # Named, so the ids can be read from a loaded export (text/input_ids:0, ...).
    encoded = {name: tf.identity(value, name=name) for name, value in encoded.items()}
    logits, _ = classifier.classifier_logits(bert_config, False, encoded["input_ids"],
                                             encoded["input_mask"], encoded["segment_ids"],
                                             len(label_list), row_blocks=row_blocks)
    logits = tf.identity(logits / temperature, name="logits")
    label_ids = tf.argmax(logits, axis=-1, output_type=tf.int32, name="label_ids")
    outputs = {"probabilities": tf.nn.softmax(logits, axis=-1, name="probabilities"),
               "logits": logits, "label_ids": label_ids,
               "labels": tf.gather(tf.constant([str(label) for label in label_list]), label_ids,
                                   name="labels"),
               "num_tokens": encoded["num_tokens"], "truncated": encoded["truncated"]}
  signature = tf1.saved_model.signature_def_utils.predict_signature_def(
      {"text_a": text_a, "text_b": text_b}, outputs)
  return signature, tf1.tables_initializer()


def settings(do_lower_case, max_seq_length):
  """What bert_export.json records about the text signature."""
  tf_text = text_ops()
  return {"name": TEXT_SIGNATURE_KEY, "inputs": list(TEXT_INPUTS), "outputs": list(TEXT_OUTPUTS),
          "do_lower_case": bool(do_lower_case), "max_seq_length": int(max_seq_length),
          "max_chars_per_word": MAX_CHARS_PER_WORD,
          "tensorflow_text_version": getattr(tf_text, "__version__", None),
          "min_model_server_version": MIN_SERVER_VERSION}


def warmup_inputs(batch_sizes=(1, 8), max_seq_length=128):
  """(signature name, {input: string array}) warmup requests: a short text alone, and a pair
  long enough to be truncated to max_seq_length."""
  requests = []
  for batch in batch_sizes:
    requests.append((TEXT_SIGNATURE_KEY, {"text_a": ["warmup"] * batch}))
    long_text = " ".join(["a"] * max_seq_length)
    requests.append((TEXT_SIGNATURE_KEY, {"text_a": [long_text] * batch,
                                          "text_b": [long_text] * batch}))
  return requests
