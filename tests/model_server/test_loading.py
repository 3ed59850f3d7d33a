"""Device choice: a CUDA engine turns cuDNN attention off (it re-plans for every new decode length)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from model_server.loading import pick_device


@pytest.fixture
def cudnn_sdp() -> Iterator[None]:
    before = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    yield
    torch.backends.cuda.enable_cudnn_sdp(before)


@pytest.mark.usefixtures("cudnn_sdp")
def test_cpu_leaves_attention_backends_alone() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert torch.backends.cuda.cudnn_sdp_enabled()


@pytest.mark.usefixtures("cudnn_sdp")
def test_cuda_turns_cudnn_attention_off() -> None:
    assert pick_device("cuda") == torch.device("cuda")
    assert not torch.backends.cuda.cudnn_sdp_enabled()
