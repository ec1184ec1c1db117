from hypothesis import given, settings
from hypothesis import strategies as st

from prm_core.domains.arith import ArithDomain
from prm_core.generation.policy import tokenizer_corpus
from prm_core.generation.tokenizer import build_tokenizer

TOK = build_tokenizer(tokenizer_corpus(ArithDomain(), 500, seed=1))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_round_trip_of_prompts_and_solutions(seed):
    d = ArithDomain()
    p = next(d.problems(1, seed))
    text = d.prompt(p) + d.reference_solution(p)
    ids = TOK(text)["input_ids"]
    assert ids[0] == TOK.bos_token_id
    assert TOK.decode(ids, skip_special_tokens=True) == text


def test_digits_are_single_tokens_and_vocab_is_small():
    assert len(TOK("123", add_special_tokens=False)["input_ids"]) == 3
    assert len(TOK) < 200


def test_unknown_words_map_to_unk():
    ids = TOK("zebra 12", add_special_tokens=False)["input_ids"]
    assert TOK.unk_token_id in ids


def test_saved_tokenizer_loads_with_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    TOK.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("Tom has 3 pens.")["input_ids"] == TOK("Tom has 3 pens.")["input_ids"]
    assert loaded.eos_token_id == TOK.eos_token_id and loaded.pad_token_id == TOK.pad_token_id
