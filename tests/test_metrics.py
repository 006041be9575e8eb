"""Metrics against references computed independently here (float64 numpy/scipy/torch),
on random features and random-weight networks saved and loaded like real weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg
from scipy.special import log_softmax

from styledistill.errors import CheckpointError, ConfigError
from styledistill.metrics.artfid import (
    ArtInception,
    artfid_score,
    inception_features,
    load_art_inception,
)
from styledistill.metrics.cfsd import cfsd_pair, load_vgg19_relu31, self_similarity_kl
from styledistill.metrics.fid import (
    feature_statistics,
    fid_from_features,
    fid_infinity,
    frechet_distance,
    trace_sqrt_product,
)
from styledistill.metrics.fidelity import psnr, ssim
from styledistill.metrics.lpips import ALEX_CHANNELS, load_lpips
from styledistill.metrics.weights import WeightsResolver
from styledistill.weights_io import read_state_dict


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook FID: eigenvalues of Σ1 Σ2 (real, >= 0 for PSD inputs)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = linalg.eigvals(s1 @ s2).real
    return float(
        ((mu1 - mu2) ** 2).sum()
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.sqrt(np.clip(eig, 0, None)).sum()
    )


# --------------------------------------------------------------------------- FID


def test_frechet_distance_matches_reference_full_rank():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 12))
    b = rng.normal(size=(150, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    expected = _reference_fid(a, b)
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)  # eigh branch (N > D)
    assert trace_sqrt_product(s1, s2) == pytest.approx(
        np.trace(linalg.sqrtm(s1 @ s2)).real, rel=1e-8
    )


def test_fid_low_rank_branch_matches_sqrtm():
    """Fewer samples than dimensions (the 800 x 2048 protocol case): nuclear-norm route."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10, 40))
    b = np.repeat(rng.normal(size=(5, 40)) + 1.0, 2, axis=0)  # duplicated style images
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    via_sqrtm = frechet_distance(mu1, s1, mu2, s2)
    assert fid_from_features(a, b) == pytest.approx(via_sqrtm, rel=1e-5)
    assert fid_from_features(a, b) == pytest.approx(_reference_fid(a, b), rel=1e-6)


def test_fid_identical_and_shifted_sets():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(30, 8))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.arange(8) * 0.1
    assert fid_from_features(a, a + shift) == pytest.approx(float(shift @ shift), abs=1e-8)


def test_frechet_distance_rejects_bad_shapes_and_values():
    with pytest.raises(ValueError, match="differ in length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        fid_from_features(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(np.zeros((1, 2)), np.zeros((3, 2)))


def test_fid_infinity_removes_small_sample_bias():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(600, 6))
    b = rng.normal(size=(600, 6))  # same distribution: true FID is 0
    result = fid_infinity(a, b, num_points=8, min_samples=60, seed=0)
    sizes, fids = np.array(result["sizes"]), np.array(result["fids"])
    slope, intercept = np.polyfit(1.0 / sizes, fids, 1)
    assert result["fid_infinity"] == pytest.approx(intercept)
    assert result["slope"] == pytest.approx(slope)
    assert result["slope"] > 0  # FID is biased upwards at small N
    assert abs(result["fid_infinity"]) < fid_from_features(a[:60], b[:60]) / 3
    with pytest.raises(ValueError, match="pairs rows"):
        fid_infinity(a, b[:10])


def test_artfid_score():
    assert artfid_score(18.13, 0.506) == pytest.approx(1.506 * 19.13)


# --------------------------------------------------------------------------- art-Inception


def test_art_inception_loads_artfid_layout_and_matches_torchvision(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    source = inception_v3(weights=None, aux_logits=False, init_weights=False)
    for module in source.modules():  # non-trivial BN statistics, so a wrong load shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    # ArtFID's art_inception.pth layout: two classification heads and two aux heads
    state["fc1.weight"], state["fc1.bias"] = torch.randn(7, 2048), torch.randn(7)
    state["fc2.weight"], state["fc2.bias"] = torch.randn(5, 2048), torch.randn(5)
    state["AuxLogits1.fc.weight"] = torch.randn(7, 768)
    path = tmp_path / "art_inception.pth"
    torch.save(state, path)

    model = load_art_inception(path)
    images = torch.rand(3, 3, 80, 96)
    features = inception_features(model, list(images), batch_size=2)
    source.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = source.eval()(images).double().numpy()
    assert features.shape == (3, 2048)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)

    bad = dict(state)
    del bad["Mixed_7c.branch_pool.conv.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not an Inception-v3 state dict"):
        load_art_inception(tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="at least 75"):
        ArtInception()(torch.rand(1, 3, 64, 64))


# --------------------------------------------------------------------------- LPIPS


def _random_lpips_files(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(1)
    trunk = {
        k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")
    }
    trunk["classifier.1.weight"] = torch.randn(4, 4)  # extra keys of the full file are ignored
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(ALEX_CHANNELS)}
    torch.save(trunk, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    return trunk, heads


def _reference_lpips(x, y, trunk, heads):
    """LPIPS-Alex v0.1 written out with functional float64 ops."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    w = {k: v.double() for k, v in trunk.items()}

    def taps(img):
        h = ((img.double() * 2 - 1) - shift) / scale
        r1 = F.relu(F.conv2d(h, w["features.0.weight"], w["features.0.bias"], stride=4, padding=2))
        h = F.max_pool2d(r1, 3, 2)
        r2 = F.relu(F.conv2d(h, w["features.3.weight"], w["features.3.bias"], padding=2))
        h = F.max_pool2d(r2, 3, 2)
        r3 = F.relu(F.conv2d(h, w["features.6.weight"], w["features.6.bias"], padding=1))
        r4 = F.relu(F.conv2d(r3, w["features.8.weight"], w["features.8.bias"], padding=1))
        r5 = F.relu(F.conv2d(r4, w["features.10.weight"], w["features.10.bias"], padding=1))
        return [r1, r2, r3, r4, r5]

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for i, (a, b) in enumerate(zip(taps(x), taps(y))):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        weight = heads[f"lin{i}.model.1.weight"].double().view(1, -1, 1, 1)
        total += ((a - b) ** 2 * weight).sum(1).mean(dim=(1, 2))
    return total


def test_lpips_matches_float64_reference(tmp_path):
    trunk, heads = _random_lpips_files(tmp_path)
    model = load_lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    torch.manual_seed(2)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        got = model(x, y).double()
        same = model(x, x)
    expected = _reference_lpips(x, y, trunk, heads)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.all(got > 0)
    assert torch.allclose(same, torch.zeros(2), atol=1e-7)


def test_lpips_rejects_wrong_files(tmp_path):
    _random_lpips_files(tmp_path)
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1)}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"lin0\.\.lin4"):
        load_lpips(tmp_path / "alexnet.pth", tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="not a torchvision AlexNet"):
        load_lpips(tmp_path / "alex.pth", tmp_path / "alex.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_lpips(tmp_path / "garbage.pth", tmp_path / "alex.pth")
    with pytest.raises(CheckpointError, match="download=False"):
        load_lpips(None, tmp_path / "alex.pth")


# --------------------------------------------------------------------------- CFSD


def _reference_cfsd_from_features(content: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """StyleID's PatchSimi, dense, float64: transpose(1,3), reshape (b, hw, c), /c."""
    b, c, h, w = content.shape
    out = []
    for i in range(b):
        fc = content[i].transpose(2, 1, 0).reshape(h * w, c) / c
        fs = stylized[i].transpose(2, 1, 0).reshape(h * w, c) / c
        log_p = log_softmax(fc @ fc.T, axis=-1)
        log_q = log_softmax(fs @ fs.T, axis=-1)
        out.append(float((np.exp(log_p) * (log_p - log_q)).sum()))
    return np.array(out)


@pytest.mark.parametrize("block_rows", [7, 1000])
def test_self_similarity_kl_tiled_matches_dense(block_rows):
    rng = np.random.default_rng(4)
    content = rng.normal(size=(2, 8, 6, 5)) * 3
    stylized = rng.normal(size=(2, 8, 6, 5)) * 3
    got = self_similarity_kl(
        torch.from_numpy(content).float(), torch.from_numpy(stylized).float(), block_rows=block_rows
    )
    np.testing.assert_allclose(
        got.numpy(), _reference_cfsd_from_features(content, stylized), rtol=1e-4
    )
    same = self_similarity_kl(torch.from_numpy(content).float(), torch.from_numpy(content).float())
    assert torch.allclose(same, torch.zeros(2, dtype=torch.float64), atol=1e-5)


def test_cfsd_loads_torchvision_vgg19_layout(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(5)
    features = make_layers(cfgs["E"])  # torchvision's vgg19().features
    with torch.no_grad():  # real relu3_1 activations are large; random ones would give KL ~ 0
        for layer in features[:12]:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(4.0)
    state = {
        f"features.{k}": v for k, v in features.state_dict().items() if int(k.split(".")[0]) < 19
    }
    torch.save(state, tmp_path / "vgg19.pth")
    model = load_vgg19_relu31(tmp_path / "vgg19.pth")
    content, stylized = torch.rand(1, 3, 32, 24), torch.rand(1, 3, 32, 24)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref_c = features[:12]((content - mean) / std).double().numpy()
        ref_s = features[:12]((stylized - mean) / std).double().numpy()
    got = cfsd_pair(model, content, stylized, block_rows=13)
    expected = _reference_cfsd_from_features(ref_c, ref_s)
    assert expected[0] > 1e-3
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-3)
    del state["features.10.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"features\.10\.weight"):
        load_vgg19_relu31(tmp_path / "short.pth")


# --------------------------------------------------------------------------- fidelity


def test_ssim_and_psnr_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(6)
    a = rng.random((3, 40, 33))
    b = np.clip(a + rng.normal(scale=0.1, size=a.shape), 0, 1)
    expected = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
    )
    got = ssim(torch.from_numpy(a), torch.from_numpy(b))
    assert float(got[0]) == pytest.approx(expected, rel=1e-9)
    assert float(psnr(torch.from_numpy(a), torch.from_numpy(b))[0]) == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-9
    )
    assert float(ssim(torch.from_numpy(a), torch.from_numpy(a))[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(torch.zeros(3, 20, 20), torch.zeros(3, 20, 21))


# --------------------------------------------------------------------------- weights lookup


def test_weights_resolver(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save({"x": torch.zeros(1)}, folder / "vgg19-dcbb9e9d.pth")
    resolver = WeightsResolver(folder)
    path, reason = resolver.find("vgg19")
    assert path == folder / "vgg19-dcbb9e9d.pth" and reason is None
    assert resolver.describe("vgg19", path)["sha256"]
    path, reason = resolver.find("art_inception")
    assert path is None
    assert "art_inception.pth" in reason and "huggingface.co" in reason
    explicit = WeightsResolver(None, {"lpips_alex": folder / "vgg19-dcbb9e9d.pth"})
    assert explicit.find("lpips_alex")[0] == folder / "vgg19-dcbb9e9d.pth"
    with pytest.raises(ConfigError, match="no such directory"):
        WeightsResolver(tmp_path / "missing")
    with pytest.raises(ConfigError, match="unknown weights"):
        WeightsResolver(None, {"resnet": folder / "vgg19-dcbb9e9d.pth"})
    torch.save({"state_dict": {"module.a": torch.ones(2)}}, tmp_path / "wrapped.pth")
    assert list(read_state_dict(tmp_path / "wrapped.pth", allow_pickle=True)) == ["a"]
    from safetensors.torch import save_file

    save_file({"lin0.weight": torch.ones(1, 64, 1, 1)}, str(tmp_path / "heads.safetensors"))
    assert read_state_dict(tmp_path / "heads.safetensors")["lin0.weight"].shape == (
        1,
        64,
        1,
        1,
    )
    torch.save({"a": 1}, tmp_path / "not_tensors.pth")
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        read_state_dict(tmp_path / "not_tensors.pth", allow_pickle=True)
