"""dlcv.stable_diffusion.embeddings: every Textual Inversion file format, read safely and added to a model."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dlcv.cli import UserError
from dlcv.stable_diffusion.embeddings import (
    EMBEDDINGS_ENV,
    add_embeddings,
    check_entries,
    default_embedding_dirs,
    embedding_entries,
    expand_placeholders,
    find_embedding,
    load_embedding,
    placeholder_names,
    read_embedding_file,
)
from dlcv.stable_diffusion.tiny import build_tiny_sd

EMBEDDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "embeddings"
WIDTH = 32  # the tiny model's text width


@pytest.fixture
def sd():
    return build_tiny_sd()


def test_embedding_manager_files(tmp_path):
    for name, token in (("embedding_manager_new1.pt", "<new1>"), ("embedding_manager_new2.pt", "<new2>")):
        path = EMBEDDINGS / name
        with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
            torch.load(path, weights_only=True)  # an old pickled ParameterDict: not plain tensors
        found = read_embedding_file(path)
        assert list(found) == [token] and found[token].shape == (1, 768)
        with torch.serialization.safe_globals([torch.nn.ParameterDict]):
            manager = torch.load(path, weights_only=True, map_location="cpu")
        raw = manager["string_to_param"].__dict__["_parameters"][token]
        torch.testing.assert_close(found[token], raw.detach(), rtol=0, atol=0)


def test_embedding_manager_saved_by_this_torch(tmp_path):
    params = torch.nn.ParameterDict({"<new1>": torch.nn.Parameter(torch.randn(2, 768))})
    manager = {"string_to_token": {"<new1>": torch.tensor(265)}, "string_to_param": params}
    torch.save(manager, tmp_path / "e.pt")
    found = read_embedding_file(tmp_path / "e.pt")
    assert torch.equal(found["<new1>"], params["<new1>"].detach())


def test_raw_tensor_files():
    for name in ("raw_tensor_dog.pt", "raw_tensor_revoy.pt"):
        path = EMBEDDINGS / name
        expected = torch.load(path, weights_only=True, map_location="cpu")
        token, value = load_embedding(path, "<new1>")
        assert token == "<new1>" and value.shape == (1, 768) and value.dtype == torch.float32
        torch.testing.assert_close(value, expected.float().reshape(1, 768), rtol=0, atol=0)
        assert list(read_embedding_file(path)) == [path.stem]


def test_diffusers_safetensors_and_bin(tmp_path):
    one, three = torch.randn(768), torch.randn(3, 768)
    save_file({"<cat-toy>": one, "<style>": three}, tmp_path / "learned_embeds.safetensors")
    torch.save({"<cat-toy>": one.half()}, tmp_path / "learned_embeds.bin")
    found = read_embedding_file(tmp_path / "learned_embeds.safetensors")
    assert found["<cat-toy>"].shape == (1, 768) and found["<style>"].shape == (3, 768)
    torch.testing.assert_close(found["<style>"], three, rtol=0, atol=0)
    token, value = load_embedding(tmp_path / "learned_embeds.bin")
    assert token == "<cat-toy>" and value.dtype == torch.float32
    torch.testing.assert_close(value[0], one.half().float(), rtol=0, atol=0)
    with pytest.raises(UserError, match="holds 2 embeddings.*none is called '<dog>'"):
        load_embedding(tmp_path / "learned_embeds.safetensors", "<dog>")
    assert load_embedding(tmp_path / "learned_embeds.safetensors", "<style>")[1].shape == (3, 768)


def test_automatic1111_pt_and_safetensors(tmp_path):
    vectors = torch.randn(2, 768)
    torch.save(
        {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": vectors},
            "name": "revoy-style",
            "step": 3000,
            "sd_checkpoint": "7460a6fa",
        },
        tmp_path / "revoy-style.pt",
    )
    save_file({"emb_params": vectors}, tmp_path / "revoy-style.safetensors")
    for suffix in (".pt", ".safetensors"):
        found = read_embedding_file(tmp_path / f"revoy-style{suffix}")
        assert list(found) == ["revoy-style"]
        torch.testing.assert_close(found["revoy-style"], vectors, rtol=0, atol=0)


def test_no_code_runs_from_an_embedding_file(tmp_path):
    marker = tmp_path / "code_was_executed"

    class Trap:
        def __reduce__(self):
            return (builtins.open, (str(marker), "w"))

    torch.save({"<new1>": torch.randn(768), "payload": Trap()}, tmp_path / "evil.bin")
    assert list(read_embedding_file(tmp_path / "evil.bin")) == ["<new1>"]
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ({"<a>": torch.zeros(2, 3, 4)}, "has shape"),
        ({"<a>": torch.tensor([1.0, float("nan")])}, "NaN"),
        ({"<a>": torch.arange(4)}, "not a float tensor"),
        ({"note": "no tensors"}, "not a Textual Inversion embedding"),
        ({"string_to_param": {}}, "holds no embeddings"),
    ],
)
def test_malformed_files(tmp_path, content, message):
    torch.save(content, tmp_path / "emb.pt")
    with pytest.raises(UserError, match=message) as info:
        read_embedding_file(tmp_path / "emb.pt")
    assert "emb.pt" in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="embedding file not found: .*nope.pt"):
        read_embedding_file(tmp_path / "nope.pt")
    (tmp_path / "junk.safetensors").write_text("not safetensors")
    with pytest.raises(UserError, match="junk.safetensors"):
        read_embedding_file(tmp_path / "junk.safetensors")


def test_add_embeddings_extends_the_table_only(sd):
    table_before = sd.text_encoder.get_input_embeddings().weight.clone()
    one, three = torch.randn(1, WIDTH), torch.randn(3, WIDTH)
    ids = add_embeddings(sd.tokenizer, sd.text_encoder, {"<new1>": one, "<new3>": three})
    assert ids == {"<new1>": [49408], "<new3>": [49409, 49410, 49411]}
    table = sd.text_encoder.get_input_embeddings().weight
    assert table.shape == (49412, WIDTH) and sd.text_encoder.config.vocab_size == 49412
    assert torch.equal(table[:49408], table_before)
    assert torch.equal(table[49408:], torch.cat([one, three]))

    prompt = expand_placeholders("a <new1> next to a <new3>", {"<new1>": 1, "<new3>": 3})
    assert prompt == "a <new1> next to a <new3> <new3>_1 <new3>_2"
    assert expand_placeholders(prompt, {"<new3>": 3}) == prompt  # already expanded: unchanged
    tokens = sd.tokenizer(prompt).input_ids
    assert tokens == [49406, 320, 49408, 1131, 531, 320, 49409, 49410, 49411, 49407]
    with torch.no_grad():  # the new rows are what the text encoder reads
        out = sd.text_encoder(torch.tensor([tokens])).last_hidden_state
    assert out.shape == (1, len(tokens), WIDTH) and torch.isfinite(out).all()


def test_placeholder_names():
    assert placeholder_names("<x>", 1) == ["<x>"]
    assert placeholder_names("<x>", 3) == ["<x>", "<x>_1", "<x>_2"]


def test_width_mismatch_is_explained(sd):
    token, value = load_embedding(EMBEDDINGS / "embedding_manager_new1.pt")
    with pytest.raises(UserError, match=r"'<new1>' from .*new1.pt has width 768, .* expects 32"):
        add_embeddings(sd.tokenizer, sd.text_encoder, {token: value}, source=str(EMBEDDINGS / "new1.pt"))
    assert len(sd.tokenizer) == 49408  # nothing was added


@pytest.mark.parametrize("token", ["dog", "<|endoftext|>", "photo</w>"])
def test_token_already_in_vocabulary(sd, token):
    with pytest.raises(UserError, match="already in the tokenizer's vocabulary"):
        add_embeddings(sd.tokenizer, sd.text_encoder, {token: torch.zeros(1, WIDTH)})


def test_token_added_twice(sd):
    add_embeddings(sd.tokenizer, sd.text_encoder, {"<new1>": torch.zeros(1, WIDTH)})
    with pytest.raises(UserError, match="'<new1>' is already"):
        add_embeddings(sd.tokenizer, sd.text_encoder, {"<new1>": torch.zeros(1, WIDTH)})
    with pytest.raises(UserError, match="collide"):
        add_embeddings(
            sd.tokenizer, sd.text_encoder, {"<x>_1": torch.zeros(1, WIDTH), "<x>": torch.zeros(2, WIDTH)}
        )


def _vec(value: float, n: int = 1) -> torch.Tensor:
    return torch.full((n, WIDTH), float(value))


def test_lookup_layouts(tmp_path):
    (tmp_path / "per_token" / "new1").mkdir(parents=True)
    save_file({"<new1>": _vec(1)}, tmp_path / "per_token" / "new1" / "learned_embeds.safetensors")
    (tmp_path / "json_run" / "0").mkdir(parents=True)
    save_file({"<new1>": _vec(2, 2)}, tmp_path / "json_run" / "0" / "learned_embeds.safetensors")
    (tmp_path / "files").mkdir()
    torch.save(_vec(3)[0], tmp_path / "files" / "new1.pt")  # a bare tensor, named by the file
    (tmp_path / "single").mkdir()
    save_file({"<other>": _vec(4)}, tmp_path / "single" / "learned_embeds.safetensors")

    def value(entries, key=None):
        hit = find_embedding("<new1>", [str(e) for e in entries], key)
        return None if hit is None else (float(hit[0][0, 0]), hit[0].shape[0], hit[1].relative_to(tmp_path))

    assert value([tmp_path / "per_token"]) == (1, 1, Path("per_token/new1/learned_embeds.safetensors"))
    assert value([tmp_path / "json_run"], key="0")[:2] == (2, 2)
    assert value([tmp_path / "json_run"], key="1") is None
    assert value([tmp_path / "files"]) == (3, 1, Path("files/new1.pt"))
    assert value([tmp_path / "single"]) is None  # a run's folder must hold the token by name
    assert value([tmp_path / "single" / "learned_embeds.safetensors"]) is None
    save_file({"<new1>": _vec(5)}, tmp_path / "single" / "learned_embeds.safetensors")
    assert value([tmp_path / "single"])[0] == 5
    assert value([tmp_path / "single" / "learned_embeds.safetensors"])[0] == 5
    assert value([tmp_path / "files", tmp_path / "per_token"])[0] == 3  # the first entry wins
    assert value([f"<new1>={tmp_path / 'json_run' / '0' / 'learned_embeds.safetensors'}"])[0] == 2
    token_file = find_embedding("<new1>", [f"<new1>={EMBEDDINGS / 'raw_tensor_dog.pt'}"])
    assert token_file[0].shape == (1, 768) and token_file[1] == EMBEDDINGS / "raw_tensor_dog.pt"
    assert value([f"<new2>={tmp_path / 'files' / 'new1.pt'}"]) is None


def test_lookup_entries_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(EMBEDDINGS_ENV, f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "checkpoints" / "pb3"  # of the working directory
    entries = embedding_entries(["cli_dir"])
    assert entries == ["cli_dir", str(tmp_path / "a"), str(tmp_path / "b"), str(default)]
    script = tmp_path / "clone" / "PB3" / "inference.py"  # the checkout of the script comes first
    assert default_embedding_dirs(script) == [tmp_path / "clone" / "checkpoints" / "pb3", default]
    assert embedding_entries([], env="", defaults=default_embedding_dirs(script))[0].startswith(
        str(tmp_path / "clone")
    )
    (tmp_path / "a").mkdir()
    with pytest.raises(UserError, match=f"{tmp_path / 'b'} does not exist"):
        check_entries(entries[1:])
    with pytest.raises(UserError, match="nope.pt does not exist"):
        check_entries([f"<new1>={tmp_path / 'nope.pt'}"])
    check_entries([str(tmp_path / "a"), str(default)])  # the default may be absent


def test_token_stems_are_plain_names_inside_their_folder():
    from dlcv.stable_diffusion.embeddings import token_stem

    assert token_stem("<new1>") == "new1" and token_stem("<a/b>") == "a_b"
    for token in ("<..>", "..", "<.>", "<../x>", "<>", "/"):
        stem = token_stem(token)
        assert stem not in (".", "..") and "/" not in stem and stem, (token, stem)
        assert (Path("base") / stem).parent == Path("base")


def test_a_token_that_is_a_path_is_not_looked_up_outside_the_folder(tmp_path):
    (tmp_path / "emb").mkdir()
    (tmp_path / "x").mkdir()
    save_file({"<x>": torch.randn(WIDTH)}, tmp_path / "x" / "learned_embeds.safetensors")
    assert find_embedding("../x", [str(tmp_path / "emb")]) is None


def test_absurd_embedding_values_are_refused_and_many_vectors_warned(tmp_path, capsys):
    from dlcv.stable_diffusion.embeddings import check_vector_count

    message = r"big\.safetensors: the embedding of '<big>' holds values up to 1e\+30,"
    save_file({"<big>": torch.full((WIDTH,), 1e30)}, tmp_path / "big.safetensors")
    with pytest.raises(UserError, match=message):
        read_embedding_file(tmp_path / "big.safetensors")
    save_file({"<ok>": torch.full((WIDTH,), 5.0)}, tmp_path / "ok.safetensors")
    assert read_embedding_file(tmp_path / "ok.safetensors")["<ok>"].shape == (1, WIDTH)
    check_vector_count("<t>", 16, 75, "f")
    assert capsys.readouterr().err == ""
    check_vector_count("<t>", 20, 75, "f")
    err = capsys.readouterr().err
    assert "has 20 vectors" in err and "leaving 55 of a prompt's 75 tokens" in err
    check_vector_count("<t>", 100, 75, "f")
    assert "more than the 75 tokens a prompt holds" in capsys.readouterr().err


def test_cut_placeholders_says_which_vectors_truncation_drops(sd):
    from dlcv.stable_diffusion.embeddings import cut_placeholders

    ids = add_embeddings(sd.tokenizer, sd.text_encoder, {"<c>": torch.randn(3, WIDTH)})
    limit = sd.tokenizer.model_max_length
    assert cut_placeholders(sd.tokenizer, "a <c> <c>_1 <c>_2 dog", ids) == {}
    filler = " ".join(["dog"] * (limit - 4))  # with the start token: the first two vectors fit
    assert cut_placeholders(sd.tokenizer, f"{filler} <c> <c>_1 <c>_2", ids) == {"<c>": 1}
    assert cut_placeholders(sd.tokenizer, f"<c> <c>_1 <c>_2 {filler} dog dog", ids) == {}  # only words go
