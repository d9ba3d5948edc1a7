"""dlcv.clip_tokenizer: the offline CLIP tokenizer equals the clip package's own."""

from __future__ import annotations

import warnings

import pytest
import torch

from dlcv.clip_tokenizer import (
    END_TOKEN,
    START_TOKEN,
    VOCAB_SIZE,
    clip_bpe_path,
    load_clip_tokenizer,
    offline_clip_tokenizer,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the clip package imports the deprecated pkg_resources
    import clip
    from clip.simple_tokenizer import SimpleTokenizer

PROMPTS = [
    "A photo of <new1>.",
    "The streets of Paris in the style of <new2>.",
    "A <new1> perched on a park bench with the Colosseum looming behind.",
    "HELLO, World!! It's 2024: 3.14 apples & 42 pears?",
    "palm_tree",
    "  extra   spaces\tand\nnewlines  ",
    "a photo of a big sweet_pepper, (maybe) #7 -- yes/no; 'quoted' \"double\"",
    " ".join(["a very long prompt"] * 40),  # far more than 77 tokens: truncated
    "",
]


@pytest.fixture(scope="module")
def tokenizer():
    return offline_clip_tokenizer()


def test_vocabulary_matches_simple_tokenizer(tokenizer):
    reference = SimpleTokenizer(str(clip_bpe_path()))
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.get_vocab() == reference.encoder
    assert tokenizer.convert_tokens_to_ids([START_TOKEN, END_TOKEN]) == [49406, 49407]
    assert tokenizer.pad_token == END_TOKEN


def test_ids_equal_clip_tokenize(tokenizer):
    ours = tokenizer(
        PROMPTS, padding="max_length", truncation=True, max_length=77, return_tensors="pt"
    ).input_ids
    theirs = clip.tokenize(PROMPTS, truncate=True)
    # clip pads with 0, SD v1 / transformers with <|endoftext|>: compare up to the first EOT.
    for a, b in zip(ours, theirs, strict=True):
        n = int((b == 49407).nonzero()[0]) + 1
        assert a[:n].tolist() == b[:n].tolist()
        assert bool((a[n:] == 49407).all())
    assert ours.shape == (len(PROMPTS), 77)
    assert ours[7, -1] == 49407 and theirs[7, -1] == 49407  # the long prompt was cut


def test_unpadded_ids_equal_simple_tokenizer_encode(tokenizer):
    reference = SimpleTokenizer(str(clip_bpe_path()))
    for prompt in PROMPTS[:7]:
        ids = tokenizer(prompt).input_ids
        assert ids == [49406, *reference.encode(prompt), 49407], prompt


def test_each_call_returns_an_independent_tokenizer():
    a, b = offline_clip_tokenizer(), offline_clip_tokenizer(model_max_length=20)
    a.add_tokens(["<new1>"])
    assert len(a) == VOCAB_SIZE + 1 and len(b) == VOCAB_SIZE
    assert b.model_max_length == 20


def test_loader_prefers_a_folders_own_files(tmp_path):
    own = offline_clip_tokenizer()
    own.add_tokens(["<own-token>"])
    own.save_pretrained(tmp_path / "sd" / "tokenizer")
    loaded = load_clip_tokenizer(tmp_path / "sd")
    assert len(loaded) == VOCAB_SIZE + 1
    assert loaded.model_max_length == 77
    # no tokenizer files -> the offline one
    assert len(load_clip_tokenizer(tmp_path / "empty")) == VOCAB_SIZE
    assert len(load_clip_tokenizer(None)) == VOCAB_SIZE


def test_ids_usable_as_tensor(tokenizer):
    batch = tokenizer(["a", "b c"], padding=True, return_tensors="pt")
    assert batch.input_ids.dtype == torch.long
