"""The nearest-patch texture pass: bank layout, exact self-reconstruction, fusion rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from styledistill.image_ops import luminance
from styledistill.student import patch_synthesis as synthesis
from styledistill.student.patch_synthesis import (
    bank_codes,
    edge_weight,
    fuse_luminance,
    paste_nearest_patches,
    patch_source,
    style_codes,
    style_patch_bank,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _image(seed: int, height: int = 48, width: int = 64) -> torch.Tensor:
    # smooth random colours: every 16 px patch is distinct, as in a photo or a painting
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, height // 4, width // 4, generator=gen)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)


def test_the_bank_holds_every_patch_of_its_grid_and_flags_overhang():
    """A 16 px patch every 8 px from (4, 4), aligned with the content's patches; those
    that overhang the style are flagged."""
    style = _image(0)
    patches, invalid = style_patch_bank(style, None, 16)
    assert patches.shape == (1, 6 * 8, 3 * 16 * 16) and invalid.shape == (1, 6 * 8)
    expected = F.unfold(style[..., 4:, 4:], 16, stride=8).transpose(1, 2)[0]  # inside ones
    valid = patches[0][~invalid[0]]
    assert len(valid) == len(expected) == 4 * 6
    # the same set of patches (order differs): each valid one is exactly one of torch's
    distances = torch.cdist(valid, expected, compute_mode="donot_use_mm_for_euclid_dist")
    assert float(distances.min(dim=1).values.max()) < 1e-5
    assert float(distances.min(dim=0).values.max()) < 1e-5


def test_chosen_patches_are_cut_from_the_style_exactly_as_the_bank_holds_them():
    """Pasting never stores the 16x larger bank: a chosen patch is read from the style's
    pixels by its number, in any batch and aspect."""
    style = torch.rand(3, 3, 48, 80, generator=torch.Generator().manual_seed(6))
    bank, invalid = style_patch_bank(style, None, 16)
    index = torch.randint(0, bank.shape[1], (3, 40), generator=torch.Generator().manual_seed(7))
    expected = torch.gather(bank, 1, index.unsqueeze(-1).expand(-1, -1, bank.shape[-1]))
    segments, grid = patch_source(style, 16)
    assert segments.shape == (3, 3 * 48 * 80 // 8, 8) and grid.tolist() == [[6.0, 10.0]] * 3
    first = synthesis.bank_patch_segments(index, grid, 16)  # [B, a, b, N]
    number = first[..., None, None] + synthesis._segment_offsets(grid, 16)[:, None, None, None]
    cut = torch.stack([segments[i][number[i]] for i in range(3)])  # [B, a, b, N, 3, y, x]
    cut = cut.permute(0, 3, 4, 1, 5, 2, 6).reshape(3, 40, -1)
    chosen = ~invalid.gather(1, index)  # patches that overhang the style are never pasted
    assert int(chosen.sum()) > 40
    torch.testing.assert_close(cut[chosen], expected[chosen], rtol=0, atol=0)


def test_a_shared_style_serves_a_batch_of_contents():
    """A style batch of 1 pastes into every image of a content batch as it would alone."""
    style = _image(11, 48, 64)
    bank, invalid = style_patch_bank(style, None, 16)
    codes = bank_codes(bank, invalid, 16)
    contents = torch.cat([_image(12), _image(13)])
    together = paste_nearest_patches(contents, *patch_source(style, 16), codes, 16)
    for i in range(2):
        alone = paste_nearest_patches(contents[i : i + 1], *patch_source(style, 16), codes, 16)
        torch.testing.assert_close(together[i : i + 1], alone)


def test_padding_makes_patches_invalid():
    style = _image(1)
    mask = torch.zeros(1, 48, 64, dtype=torch.bool)
    mask[:, :, 32:] = True  # the right half is padding
    patches, invalid = style_patch_bank(style, mask, 16)
    _, inside = style_patch_bank(style[..., :32], None, 16)
    assert int((~invalid).sum()) == int((~inside).sum()) == 4 * 2
    for patch in patches[0][~invalid[0]].view(-1, 3, 16, 16):
        assert any(
            torch.equal(patch, style[0, :, y : y + 16, x : x + 16])
            for y in range(0, 33, 4)
            for x in range(0, 17, 4)
        )


def test_an_image_pasted_from_its_own_bank_is_itself():
    """Each inner patch finds itself (distance 0), so the interior is reproduced exactly;
    an unrelated image only ever receives the bank's colours."""
    style = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    patches, invalid = style_patch_bank(style, None, 16)
    codes = bank_codes(patches, invalid, 16)
    out = paste_nearest_patches(style, *patch_source(style, 16), codes, 16)
    inner = (..., slice(12, -12), slice(12, -12))  # away from the overhanging border patches
    torch.testing.assert_close(out[inner], style[inner], atol=1e-4, rtol=0)
    two_colours = torch.zeros(1, 3, 32, 32)
    two_colours[:, 0, :, :16] = 1.0
    two_colours[:, 2, :, 16:] = 1.0
    bank, flags = style_patch_bank(two_colours, None, 16)
    codes = bank_codes(bank, flags, 16)
    pasted = paste_nearest_patches(_image(3, 32, 32), *patch_source(two_colours, 16), codes, 16)
    assert float(pasted[:, 1].abs().max()) == 0.0  # no green: only the style's pixels
    torch.testing.assert_close(pasted[:, 0] + pasted[:, 2], torch.ones(1, 32, 32))


def test_invalid_patches_are_never_chosen():
    style = torch.zeros(1, 3, 32, 32)
    style[..., :20, :] = 1.0  # white top, black bottom: the bank's first row of patches is white
    patches, invalid = style_patch_bank(style, None, 16)
    white = patches.mean(-1) > 0.99
    codes = bank_codes(patches, invalid | ~white, 16)
    out = paste_nearest_patches(torch.zeros(1, 3, 32, 32), *patch_source(style, 16), codes, 16)
    assert float(out.min()) > 0.99  # a black image got white patches: the black ones were off


def test_luminance_fusion_keeps_chroma_and_follows_the_content_on_edges():
    mosaic = torch.full((1, 3, 32, 32), 0.2)
    mosaic[:, 0] = 0.4  # reddish, flat
    content_luma = torch.zeros(1, 1, 32, 32)
    content_luma[..., 16:] = 0.8
    weight = torch.ones(1, 1, 32, 32)
    fused = fuse_luminance(mosaic, content_luma, weight, detail_radius=2)
    ratio = fused[:, 0] / fused[:, 1]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 2.0), atol=1e-4, rtol=0)
    expected = (luminance(mosaic) + content_luma) / 2  # weight 1: half way, no detail
    torch.testing.assert_close(luminance(fused), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("stride", [1, 2])
def test_edge_weight_is_high_on_edges_and_floor_on_flat_areas(stride):
    """Also when measured at half resolution and upsampled (``stride`` 2)."""
    content = torch.zeros(1, 3, 64, 64)
    content[..., 32:] = 1.0
    weight = edge_weight(content, floor=0.2, radius=2, stride=stride)
    assert weight.shape == (1, 1, 64, 64)
    assert float(weight[..., 30:34].min()) > 0.9
    torch.testing.assert_close(weight[..., :20], torch.full_like(weight[..., :20], 0.2))


def test_large_contents_are_matched_in_blocks_with_the_same_result(monkeypatch):
    """The score matrix is bounded by scoring content patches in blocks; the choice and
    the pasted image do not depend on the block size."""
    style = _image(4, 64, 64)
    bank, invalid = style_patch_bank(style, None, 16)
    codes = bank_codes(bank, invalid, 16)
    content = _image(5, 96, 80)
    source = patch_source(style, 16)
    whole = paste_nearest_patches(content, *source, codes, 16)
    monkeypatch.setattr(synthesis, "_QUERY_BLOCK", 7)  # 120 patches in 18 blocks
    torch.testing.assert_close(paste_nearest_patches(content, *source, codes, 16), whole)


def test_the_search_picks_the_exact_nearest_valid_patch():
    """One matmul with the norm folded in: the distance it finds is the true nearest one,
    and never an invalid patch."""
    style, content = _image(8, 96, 96), _image(9, 96, 128)
    bank, invalid = style_patch_bank(style, None, 16)
    codes = bank_codes(bank, invalid, 16)
    query = synthesis._query_codes(content, 16, 8)
    best, index = synthesis._nearest_codes(query, codes)
    exact = torch.cdist(query, codes[..., :-1]).pow(2) + invalid[:, None, :] * 1e4
    exact_best = exact.min(dim=-1).values - query.pow(2).sum(-1)
    torch.testing.assert_close(best, exact_best, atol=1e-4, rtol=0)
    assert not bool(invalid.gather(1, index).any())


@pytest.mark.parametrize("chroma", [None, 2, 8])
def test_query_codes_are_the_match_codes_of_the_contents_patches(chroma):
    """The content's codes come from brightness and chroma planes cut into patches; they
    equal the match code of each cut patch (its overhang reflected), whatever the chroma
    grid (None: half the brightness grid)."""
    content = _image(14, 48, 80)
    pooled = synthesis.unfold_patches(F.avg_pool2d(content, 2), 8, 4, "reflect")
    expected = synthesis._match_code(pooled.unflatten(2, (3, 8, 8)), 8, chroma)
    assert expected.shape[-1] == synthesis.code_size(8, chroma)
    torch.testing.assert_close(synthesis._query_codes(content, 16, 8, chroma), expected)


@pytest.mark.parametrize("chroma", [None, 2])
def test_style_codes_equal_the_codes_of_the_cut_bank(chroma):
    """The style memory's codes are read off the pooled style without cutting the bank:
    the same numbers on every valid patch, and the same patches flagged never-chosen."""
    style = _image(10, 64, 96).expand(2, -1, -1, -1).contiguous()
    mask = torch.zeros(2, 64, 96, dtype=torch.bool)
    mask[1, :, 80:] = True  # the second style is padded on the right
    bank, invalid = style_patch_bank(style, mask, 16)
    expected = bank_codes(bank, invalid, 16, chroma_cells=chroma)
    codes = style_codes(style, mask, 16, chroma_cells=chroma)
    assert codes.shape == expected.shape
    torch.testing.assert_close(codes[~invalid], expected[~invalid], atol=1e-5, rtol=0)
    assert torch.equal(codes[..., -1] >= 1e4, invalid)
