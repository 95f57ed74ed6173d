import collections

import pytest

from bert import tokenization


def _write_vocab(tmp_path, tokens, name="vocab.txt"):
  path = tmp_path / name
  path.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
  return str(path)


VOCAB_TOKENS = [
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "want",
    "##want",
    "##ed",
    "wa",
    "un",
    "runn",
    "##ing",
    ",",
    "low",
    "lowest",
    "我",
    "爱",
    "北",
    "京",
    "ah",
    "博",
    "推",
    "zz",
    "，",
    "！",
    "hello",
]


@pytest.fixture
def vocab_file(tmp_path):
  return _write_vocab(tmp_path, VOCAB_TOKENS)


def test_full_tokenizer_end_to_end(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  tokens = tokenizer.tokenize(u"UNwant\u00E9d,running")
  assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
  assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]


def test_full_tokenizer_accepts_bytes(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file)
  assert tokenizer.tokenize("HeLLo 我".encode("utf-8")) == ["hello", "我"]


def test_lower_casing_strips_accents():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "hello", "!", "how", "are", "you", "?"
  ]
  assert tokenizer.tokenize(u"H\u00E9llo") == ["hello"]
  assert tokenizer.tokenize(u"héllo HeLLo") == ["hello", "hello"]


def test_no_lower_casing_keeps_case_and_accents():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "HeLLo", "!", "how", "Are", "yoU", "?"
  ]
  assert tokenizer.tokenize(u"H\u00E9llo") == [u"H\u00E9llo"]


def test_control_characters_are_removed():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  text = u"ab\x00c\ufffdd\u200be\x07f\tg\u00a0h"
  # \x00, \ufffd, zero-width space (Cf) and BEL (Cc) vanish; tab and NBSP split.
  assert tokenizer.tokenize(text) == ["abcdef", "g", "h"]


def test_chinese_characters_become_single_tokens():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(u"我爱北京") == ["我", "爱", "北", "京"]
  assert tokenizer.tokenize(u"ah\u535A\u63A8zz") == ["ah", "\u535A", "\u63A8", "zz"]
  # Extension B ideograph (outside the BMP) is isolated too.
  assert tokenizer.tokenize(u"a\U00020000b") == ["a", u"\U00020000", "b"]


def test_hangul_is_not_split_per_character():
  # Lower-casing would NFD-decompose Hangul syllables, so keep case here.
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize(u"안녕하세요") == [u"안녕하세요"]


def test_full_tokenizer_chinese_and_chinese_punctuation(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file)
  tokens = tokenizer.tokenize(u"我爱北京，ah博推zz！")
  assert tokens == ["我", "爱", "北", "京", "，", "ah", "博", "推", "zz", "！"]


def test_punctuation_split():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize(u"a,b.c$d^e`f") == [
      "a", ",", "b", ".", "c", "$", "d", "^", "e", "`", "f"
  ]
  assert tokenizer.tokenize(u"好，了！") == ["好", "，", "了", "！"]
  assert tokenizer.tokenize(u"...") == [".", ".", "."]


def test_wordpiece_greedy_longest_match_first():
  vocab = {
      token: i
      for i, token in enumerate(["[UNK]", "un", "##want", "##ed", "runn", "##ing", "want", "wa"])
  }
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tokenizer.tokenize(u"") == []
  assert tokenizer.tokenize(u"unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
  # "want" beats the shorter "wa" prefix.
  assert tokenizer.tokenize(u"want") == ["want"]


def test_wordpiece_unknown_word_becomes_single_unk():
  vocab = {token: i for i, token in enumerate(["[UNK]", "un", "##want", "##ed", "runn", "##ing"])}
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  # "unwantedX" matches a prefix but not the tail: no partial pieces allowed.
  assert tokenizer.tokenize(u"unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_wordpiece_overlong_word_is_unk():
  vocab = {"[UNK]": 0, "a": 1, "##a": 2}
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tokenizer.tokenize("a" * 200) == ["a"] + ["##a"] * 199
  assert tokenizer.tokenize("a" * 201) == ["[UNK]"]


def test_wordpiece_custom_unk_token():
  tokenizer = tokenization.WordpieceTokenizer(vocab={"x": 0}, unk_token="<unk>")
  assert tokenizer.tokenize(u"y x") == ["<unk>", "x"]


def test_ids_tokens_round_trip(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file)
  tokens = ["[CLS]", "want", "##ed", "我", "[SEP]"]
  ids = tokenizer.convert_tokens_to_ids(tokens)
  assert ids == [1, 3, 5, 13, 2]
  assert tokenizer.convert_ids_to_tokens(ids) == tokens
  assert tokenization.convert_tokens_to_ids(tokenizer.vocab, tokens) == ids
  assert tokenization.convert_ids_to_tokens(tokenizer.inv_vocab, ids) == tokens


def test_load_vocab_preserves_file_order(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text(u"zeta\n  alpha \r\n[PAD]\n中\n", encoding="utf-8")
  vocab = tokenization.load_vocab(str(path))
  assert isinstance(vocab, collections.OrderedDict)
  assert list(vocab.items()) == [("zeta", 0), ("alpha", 1), ("[PAD]", 2), ("中", 3)]


def test_missing_vocab_file_raises_clear_error(tmp_path):
  missing = str(tmp_path / "nope" / "vocab.txt")
  with pytest.raises(ValueError, match="file not found") as excinfo:
    tokenization.load_vocab(missing)
  assert missing in str(excinfo.value)
  with pytest.raises(ValueError):
    tokenization.FullTokenizer(missing)


def test_whitespace_tokenize():
  assert tokenization.whitespace_tokenize(u"") == []
  assert tokenization.whitespace_tokenize(u"  \t ") == []
  assert tokenization.whitespace_tokenize(u" a  b\nc ") == ["a", "b", "c"]


def test_convert_to_unicode():
  assert tokenization.convert_to_unicode(u"héllo") == u"héllo"
  assert tokenization.convert_to_unicode(u"héllo".encode("utf-8")) == u"héllo"
  # Invalid utf-8 bytes are dropped rather than raising.
  assert tokenization.convert_to_unicode(b"a\xffb") == u"ab"
  assert tokenization.printable_text(b"abc") == u"abc"
  with pytest.raises(ValueError):
    tokenization.convert_to_unicode(123)


def test_character_class_helpers():
  assert tokenization._is_whitespace(u" ")
  assert tokenization._is_whitespace(u"\t")
  assert tokenization._is_whitespace(u"\r")
  assert tokenization._is_whitespace(u"\n")
  assert tokenization._is_whitespace(u"\u00A0")
  assert not tokenization._is_whitespace(u"A")
  assert not tokenization._is_whitespace(u"-")

  assert tokenization._is_control(u"\u0005")
  assert tokenization._is_control(u"\u200b")
  assert not tokenization._is_control(u"A")
  assert not tokenization._is_control(u" ")
  assert not tokenization._is_control(u"\t")
  assert not tokenization._is_control(u"\r")

  assert tokenization._is_punctuation(u"-")
  assert tokenization._is_punctuation(u"$")
  assert tokenization._is_punctuation(u"`")
  assert tokenization._is_punctuation(u".")
  assert tokenization._is_punctuation(u"，")
  assert not tokenization._is_punctuation(u"A")
  assert not tokenization._is_punctuation(u" ")


@pytest.mark.parametrize("do_lower_case,checkpoint", [
    (False, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt"),
    (False, "/models/chinese_L-12_H-768_A-12/bert_model.ckpt"),
    (True, "/models/cased_L-12_H-768_A-12/bert_model.ckpt"),
    (True, "gs://b/multi_cased_L-12_H-768_A-12/bert_model.ckpt"),
])
def test_validate_case_mismatch_raises(do_lower_case, checkpoint):
  with pytest.raises(ValueError, match="do_lower_case=%s" % (not do_lower_case)):
    tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint)


@pytest.mark.parametrize("do_lower_case,checkpoint", [
    (True, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt"),
    (True, "/models/multilingual_L-12_H-768_A-12/bert_model.ckpt"),
    (False, "/models/cased_L-24_H-1024_A-16/bert_model.ckpt"),
    (False, ""),
    (True, None),
    (False, "/models/my_distilled_student/model.ckpt-1000"),
    (False, "/models/some_custom_model/bert_model.ckpt"),
])
def test_validate_case_match_or_unknown_is_silent(do_lower_case, checkpoint):
  assert tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint) is None
