"""The gatys teacher: the content's layout kept, the style's Gram statistics taken on."""

from __future__ import annotations

import pytest
import torch

from styledistill.errors import ConfigError
from styledistill.image_ops import histogram_matched
from styledistill.teachers import create_teacher
from styledistill.teachers.gatys import _gram


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 64)
    content = torch.stack(
        [ramp[None].expand(64, 64), ramp[:, None].expand(64, 64), 0.5 * torch.ones(64, 64)]
    )
    style = (
        (torch.rand(3, 8, 8, generator=g) > 0.5)
        .float()
        .repeat_interleave(8, 1)
        .repeat_interleave(8, 2)
    )
    return content, style


def test_zero_steps_is_the_histogram_matched_start_and_steps_move_towards_the_style():
    content, style = _pair()
    start = create_teacher("gatys", size=64, steps=0).stylize([content], [style])[0]
    torch.testing.assert_close(start, histogram_matched(content, style), atol=2e-3, rtol=0)
    teacher = create_teacher("gatys", size=64, steps=8)
    out = teacher.stylize([content], [style])
    assert out.shape == (1, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    net = teacher._network()
    layer = "stride4"
    target = _gram(net(style[None])[layer])
    before = (_gram(net(start[None])[layer]) - target).abs().mean()
    after = (_gram(net(out)[layer]) - target).abs().mean()
    assert after < before  # the optimisation takes on the style's statistics
    torch.testing.assert_close(out, teacher.stylize([content], [style]))  # deterministic


def test_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"^gatys teacher: lr must be a finite number"):
        create_teacher("gatys", lr=float("nan"))
    with pytest.raises(ConfigError, match=r"^gatys teacher: network 'alexnet'"):
        create_teacher("gatys", network="alexnet")
    with pytest.raises(ConfigError, match=r"^gatys teacher: 2 contents but 3 styles"):
        content, style = _pair()
        create_teacher("gatys", size=64, steps=0).stylize([content] * 2, [style] * 3)
