"""EfficientAT_HEAR embedding recipes: sizes, scene and timestamp embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import models  # noqa: F401
from models import create_frontend, create_model
from models.efficientat.embeddings import embed, recipe_parts, scene_embeddings, timestamp_embeddings

SR = 32000
LAYOUTS = json.loads((Path(__file__).parent / "golden" / "efficientat_layouts.json").read_text())["models"]


@pytest.fixture(scope="module")
def mn04():
    torch.manual_seed(0)
    return create_model("mn04_as"), create_frontend("mn04_as")


def test_blocks_mel_sizes_of_published_models() -> None:
    """mel (128) + channels of features[5, 11, 13, 15], from the published feature-map shapes."""
    sizes = {n: 128 + sum(LAYOUTS[n]["fmap_shapes"][i][1] for i in (5, 11, 13, 15)) for n in LAYOUTS}
    assert sizes == {"mn04_as": 320, "mn10_as": 600, "mn40_as": 2016, "dymn04_as": 320, "dymn10_as": 600}


@pytest.mark.parametrize("name,size", [("mn01_as", 184), ("mn04_as", 320), ("dymn04_as", 320)])
def test_blocks_mel_embedding_size(name: str, size: int) -> None:
    model, frontend = create_model(name), create_frontend(name)
    assert embed(model, frontend, torch.randn(2, SR // 2), SR).shape == (2, size)


def test_recipe_parts_and_alternatives(mn04) -> None:
    model, frontend = mn04
    x = torch.randn(2, SR // 2)
    assert recipe_parts("blocks+mel") == ("mel", "b5", "b11", "b13", "b15")
    assert recipe_parts("mel+b16") == ("mel", "b16")
    final = embed(model, frontend, x, SR, recipe="final")
    model.eval()
    with torch.no_grad():
        logits, embedding = model(frontend.eval()(x))
    torch.testing.assert_close(final, embedding)
    torch.testing.assert_close(embed(model, frontend, x, SR, recipe=["b16"]), embedding)
    torch.testing.assert_close(embed(model, frontend, x, SR, recipe="logits"), logits)
    mel = embed(model, frontend, x, SR, recipe="mel")
    torch.testing.assert_close(mel, frontend(x).mean(dim=3).flatten(1))
    both = embed(model, frontend, x, SR)
    torch.testing.assert_close(both[:, :128], mel)
    with pytest.raises(ValueError):
        recipe_parts("b17")
    with pytest.raises(ValueError, match="resample"):
        embed(model, frontend, x, 16000)


def test_modes_are_restored(mn04) -> None:
    model, frontend = mn04
    model.train()
    frontend.train()
    embed(model, frontend, torch.randn(1, SR // 4), SR)
    assert model.training and frontend.training


def test_timestamp_embeddings(mn04) -> None:
    model, frontend = mn04
    audio = torch.randn(2, SR)
    emb, times = timestamp_embeddings(model, frontend, audio, SR)
    window, hop = 5120, 1600  # 160 ms, 50 ms
    assert emb.shape == (2, (SR + 2 * (window // 2) - window) // hop + 1, 320) == (2, 21, 320)
    assert times.shape == (2, 21)
    torch.testing.assert_close(times[0, :3], torch.tensor([0.0, 50.0, 100.0]))
    padded = F.pad(audio.unsqueeze(1), (window // 2, window // 2), mode="reflect").squeeze(1)
    third = embed(model, frontend, padded[:, 3 * hop : 3 * hop + window], SR)
    torch.testing.assert_close(emb[:, 3], third, rtol=1e-4, atol=1e-5)


def test_scene_embeddings_short_and_long() -> None:
    model, frontend = create_model("mn01_as"), create_frontend("mn01_as")
    short = torch.randn(2, SR * 2)
    torch.testing.assert_close(scene_embeddings(model, frontend, short, SR), embed(model, frontend, short, SR))
    # Long clips: mean over 10 s windows every 2.5 s of the clip reflect-padded by half a window.
    # Shortened to 1 s windows / 0.25 s hop to keep the test fast; the logic is the same.
    long = torch.randn(1, int(SR * 2.3))
    scene = scene_embeddings(model, frontend, long, SR, max_window_s=1.0, hop_s=0.25)
    padded = F.pad(long.unsqueeze(1), (SR // 2, SR // 2), mode="reflect").squeeze(1)
    starts = range(0, padded.shape[1] - SR + 1, SR // 4)
    ref = torch.stack([embed(model, frontend, padded[:, s : s + SR], SR) for s in starts]).mean(dim=0)
    torch.testing.assert_close(scene, ref, rtol=1e-4, atol=1e-5)
