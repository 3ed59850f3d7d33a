"""The align model's contract with model_server: factory, checkpoint round trip, splicing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from finetune.vr.build import make_tiny_align_model
from kovr.modeling.align_config import AlignConfig, TokenSelection
from kovr.modeling.align_model import AlignModel
from kovr.modeling.image_prompt import (
    splice_image_embeds,
    split_prompt,
    tokenize_many_with_images,
    tokenize_with_images,
)
from kovr.modeling.images import decode_data_uri, encode_data_uri
from kovr.modeling.projector import build_projector, grid_position_code


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _image(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    image = Image.new("RGB", size, colour)
    image.paste((255, 255, 255), (5, 5, 15, 15))
    return image


def test_projector_factory_builds_known_and_rejects_unknown() -> None:
    assert isinstance(build_projector("linear", 8, 16), torch.nn.Linear)
    mlp = build_projector("mlp2x_gelu", 8, 16)
    assert mlp(torch.zeros(2, 8)).shape == (2, 16)
    with pytest.raises(ValueError, match="Unknown projector type 'mlp3x_relu'"):
        build_projector("mlp3x_relu", 8, 16)
    with pytest.raises(ValueError, match="Unknown projector type"):
        AlignConfig(projector_type="qformer")
    with pytest.raises(ValueError, match="Unknown token selection"):
        AlignConfig(token_selection="all")  # type: ignore[arg-type]  # an unknown selection, on purpose


@pytest.mark.parametrize(("selection", "expected"), [("patch", 16), ("cls_patch", 17), ("pooled", 1)])
def test_prefix_length_follows_token_selection(selection: TokenSelection, expected: int) -> None:
    model = make_tiny_align_model(24, token_selection=selection)
    out = model.encode(model.preprocess([_image((200, 0, 0))]))
    assert model.num_prefix_tokens == expected
    assert out.shape == (1, expected, 24)


def test_checkpoint_round_trip_gives_identical_prefix(tmp_path: Path) -> None:
    model = make_tiny_align_model(24, projector_type="linear", language_model="lm-somewhere").eval()
    images = [_image((200, 0, 0)), _image((0, 0, 200), size=(30, 50))]
    pixels = model.preprocess(images)
    with torch.no_grad():
        before = model.encode(pixels)
    folder = model.save(tmp_path / "ckpt")
    assert {p.name for p in folder.iterdir()} >= {"align_config.json", "projector.safetensors", "vision_encoder"}

    loaded = AlignModel.from_checkpoint(folder)
    assert loaded.config == model.config
    with torch.no_grad():
        after = loaded.encode(loaded.preprocess(images))
    assert torch.equal(before, after)
    assert not torch.allclose(after[0], after[1])  # different images, different prefixes


def test_frozen_encoder_only_projector_trains() -> None:
    model = make_tiny_align_model(24)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projector.") for n in trainable)


def test_position_code_marks_rows_and_columns_and_survives_a_round_trip(tmp_path: Path) -> None:
    model = make_tiny_align_model(24, prefix_positions=True).eval()  # 32 px / 8 px patches: a 4x4 grid
    assert model.prefix_position is not None
    code = model.prefix_position.detach()
    assert code.shape == (16, 24)
    # Cells one column apart differ by the same step wherever they are; so do cells one row apart.
    assert torch.allclose(code[1] - code[0], code[14] - code[13], atol=1e-6)
    assert torch.allclose(code[4] - code[0], code[15] - code[11], atol=1e-6)
    assert not torch.allclose(code[1] - code[0], code[4] - code[0])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "prefix_position" in trainable
    assert {id(p) for p in model.projection_parameters()} >= {id(model.prefix_position)}

    with torch.no_grad():
        model.prefix_position.add_(0.5)  # a trained code, not the initial one, must be what is saved
        features = torch.randn(1, 16, model.config.vision_hidden)
        assert torch.allclose(model.project(features) - model.projector(features), model.prefix_position)
        before = model.encode(model.preprocess([_image((0, 120, 0))]))
    loaded = AlignModel.from_checkpoint(model.save(tmp_path / "ckpt"))
    assert loaded.config.prefix_positions
    with torch.no_grad():
        assert torch.equal(loaded.encode(loaded.preprocess([_image((0, 120, 0))])), before)

    (tmp_path / "ckpt" / "align_config.json").write_text(
        (tmp_path / "ckpt" / "align_config.json").read_text()
        .replace('"prefix_positions": true', '"prefix_positions": false'))
    with pytest.raises(ValueError, match="disagree on prefix_positions"):
        AlignModel.from_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="token_selection 'patch'"):
        make_tiny_align_model(24, token_selection="cls_patch", prefix_positions=True)
    with pytest.raises(ValueError, match="square grid"):
        grid_position_code(12, 24)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"align_config\.json"):
        AlignModel.from_checkpoint(tmp_path)


def test_splice_places_prefix_before_the_given_token() -> None:
    text = torch.arange(5, dtype=torch.float32).unsqueeze(1).repeat(1, 2)  # rows 0..4
    first = torch.full((2, 2), -1.0)
    second = torch.full((3, 2), -2.0)
    out = splice_image_embeds(text, [second, first], [4, 1])
    assert out[:, 0].tolist() == [0, -1, -1, 1, 2, 3, -2, -2, -2, 4]
    assert splice_image_embeds(text, [first], [5])[-2:, 0].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="outside"):
        splice_image_embeds(text, [first], [6])
    with pytest.raises(ValueError, match="positions"):
        splice_image_embeds(text, [first], [])


class _CharTokenizer:
    def __call__(self, text: str | list[str], add_special_tokens: bool = False) -> dict[str, list]:
        if isinstance(text, list):
            return {"input_ids": [[ord(c) for c in t] for t in text]}
        return {"input_ids": [ord(c) for c in text]}


def test_images_in_prompt_markdown_become_positions() -> None:
    uri = encode_data_uri(_image((0, 200, 0)))
    prompt = f"질문:\n![]({uri})\n무슨 색?"
    assert split_prompt(prompt)[1] == uri
    ids, urls, positions = tokenize_with_images(prompt, _CharTokenizer())
    assert urls == [uri] and positions == [len("질문:\n")]
    assert "".join(map(chr, ids)) == "질문:\n\n무슨 색?"
    two = f"![]({uri})![](b)둘 중 무엇?"
    assert tokenize_many_with_images([two, prompt, "그림 없음"], _CharTokenizer()) == [
        ([ord(c) for c in "둘 중 무엇?"], [uri, "b"], [0, 0]), (ids, urls, positions),
        ([ord(c) for c in "그림 없음"], [], [])]
    assert decode_data_uri(uri).size == (40, 30)
    with pytest.raises(ValueError, match="data:image"):
        decode_data_uri("https://example.com/cat.png")
    with pytest.raises(ValueError, match="cannot decode"):
        decode_data_uri("data:image/png;base64,aGVsbG8=")
