"""The teacher registry: every name the CLI offers builds, one default model, clear refusals."""

from __future__ import annotations

import pytest
import torch

from conftest import modules_imported_by
from styledistill.errors import ConfigError
from styledistill.teachers import (
    DEFAULT_STYLEID_MODEL,
    StyleIDTeacher,
    TextureTeacher,
    create_teacher,
    get_teacher_class,
    get_teacher_spec,
    list_teachers,
    registry,
)


def test_list_teachers_names_every_registered_teacher():
    assert list_teachers() == ["gatys", "styleid", "texture"]
    assert get_teacher_class("texture") is TextureTeacher
    assert get_teacher_class("styleid") is StyleIDTeacher
    for name in list_teachers():
        spec = get_teacher_spec(name)
        assert spec.name == name and spec.default_size > 0 and spec.summary
        assert spec.teacher_class().name == name  # the class's own name matches the registry


def test_create_teacher_builds_the_texture_teacher_with_its_settings():
    teacher = create_teacher("texture", size=64, seed=3, iterations=1)
    reference = TextureTeacher(size=64, seed=3, iterations=1)
    assert isinstance(teacher, TextureTeacher)
    assert teacher.config() == reference.config()
    content = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    style = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        teacher.stylize([content], [style]), reference.stylize([content], [style])
    )


def test_create_teacher_refusals_are_one_line_config_errors():
    with pytest.raises(
        ConfigError, match=r"unknown teacher 'diffusion'; choose from gatys, styleid, texture"
    ):
        create_teacher("diffusion")
    with pytest.raises(ConfigError, match=r"--model applies to --teacher styleid only"):
        create_teacher("texture", model="CompVis/stable-diffusion-v1-4")
    with pytest.raises(ConfigError, match=r"^texture teacher: .*patch_size_typo"):
        create_teacher("texture", patch_size_typo=3)


def test_create_teacher_loads_weighted_teachers_from_the_one_default_model(monkeypatch):
    calls = []

    def fake_from_pretrained(cls, model_id_or_path, *, device=None, **settings):
        calls.append((model_id_or_path, device, settings))
        return "built"

    monkeypatch.setattr(StyleIDTeacher, "from_pretrained", classmethod(fake_from_pretrained))
    assert create_teacher("styleid", device="cpu", num_steps=5) == "built"
    assert create_teacher("styleid", model="my/sd", num_steps=5) == "built"
    assert calls == [
        (DEFAULT_STYLEID_MODEL, "cpu", {"num_steps": 5}),
        ("my/sd", None, {"num_steps": 5}),
    ]
    from styledistill.teachers import styleid

    assert styleid.DEFAULT_MODEL == DEFAULT_STYLEID_MODEL
    assert get_teacher_spec("styleid").default_model == DEFAULT_STYLEID_MODEL


def test_cli_teacher_choices_come_from_the_registry(monkeypatch):
    """A registered teacher appears in teach, evaluate and bench without editing them."""
    from styledistill.cli import build_parser

    extra = registry.TeacherSpec(
        name="zz_test",
        class_path="styledistill.teachers.texture:TextureTeacher",
        summary="test entry",
        default_size=32,
        needs_weights=False,
    )
    monkeypatch.setitem(registry._REGISTRY, "zz_test", extra)
    parser = build_parser()
    common = ["--contents", "c", "--styles", "s", "--out", "o"]
    assert parser.parse_args(["teach", "--teacher", "zz_test", *common]).teacher == "zz_test"
    assert parser.parse_args(["evaluate", "--teacher", "zz_test", *common]).teacher == "zz_test"
    assert parser.parse_args(["bench", "--teacher", "zz_test"]).teacher == "zz_test"
    with pytest.raises(SystemExit):
        parser.parse_args(["teach", "--teacher", "nope", *common])


def test_registry_import_stays_torch_free():
    """The CLI lists teachers for --help without importing torch or diffusers."""
    code = "from styledistill.teachers import list_teachers; list_teachers()"
    assert modules_imported_by(code, ["torch", "diffusers"]) == []
