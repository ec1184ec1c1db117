"""A word-level tokenizer for the arith testbed, built with `tokenizers` and saved as `PreTrainedTokenizerFast`.

Words keep their leading space and every digit is its own token (testbed-probe.md §1), so arithmetic is
learnable digit by digit and decode(encode(text)) == text exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
SPLIT_PATTERN = r" ?[A-Za-z]+|\d| ?[^\sA-Za-z\d]|\n| "
# characters always in the vocabulary, so unseen numbers and symbols never become <unk>
BASE_PIECES = [str(d) for d in range(10)] + ["\n", " "] + [f"{p}{c}" for p in ("", " ") for c in ":=+-*/.,?!()"]


def build_tokenizer(texts: Iterable[str]):
    """A `PreTrainedTokenizerFast` whose vocabulary covers every piece of `texts`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    splitter = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    pieces: set[str] = set(BASE_PIECES)
    for text in texts:
        pieces.update(piece for piece, _ in splitter.pre_tokenize_str(text))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(pieces - set(SPECIALS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = splitter
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
