"""Video stylization: frames, fps, size and audio kept; temporal blending reduces flicker."""

from __future__ import annotations

import argparse
import itertools
import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from styledistill.cli.stylize import add_video_arguments, run_video  # noqa: E402
from styledistill.student import Stylizer  # noqa: E402
from styledistill.video import TemporalBlender, VideoError, stylize_video  # noqa: E402

FPS = 10
FRAMES = 12
WIDTH, HEIGHT = 64, 48
SAMPLE_RATE = 16000


def make_video(
    path: Path, *, audio: str | None = "aac", frames: int = FRAMES, seed: int = 0
) -> Path:
    """A moving red square on a gradient with sensor-like noise, plus a 440 Hz tone."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "8"}
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=SAMPLE_RATE)
            sound.layout = "mono"
        ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
        background = np.stack([xs / WIDTH, ys / HEIGHT, np.full(xs.shape, 0.5)], -1)
        for index in range(frames):
            image = background.copy()
            left = 4 + 3 * index
            image[12:28, left : left + 16] = (1.0, 0.2, 0.1)
            image += rng.normal(0.0, 0.02, image.shape)
            frame = av.VideoFrame.from_ndarray(
                (np.clip(image, 0, 1) * 255).astype(np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            samples = SAMPLE_RATE * frames // FPS
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(
                np.float32
            )
            fmt = "fltp" if audio == "aac" else "s16"
            data = tone if fmt == "fltp" else (tone * 32767).astype(np.int16)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    data[None, start : start + 1024], format=fmt, layout="mono"
                )
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                chunk.time_base = Fraction(1, SAMPLE_RATE)
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "frames": frames,
            "fps": video.average_rate,
            "size": (video.codec_context.width, video.codec_context.height),
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name if audio else None,
            "audio_rate": audio.codec_context.sample_rate if audio else None,
        }


pytestmark = pytest.mark.usefixtures("one_thread")

# tiny_student_dir (a saved tiny student) and noise_image (64x64 RGB noise): conftest.py


def test_stylize_video_keeps_frames_fps_size_audio_and_blending_cuts_flicker(
    tiny_student_dir, noise_image, tmp_path
):
    source = make_video(tmp_path / "in.mp4")
    stylizer = Stylizer.from_pretrained(tiny_student_dir, device="cpu", size=64)
    report = stylize_video(
        stylizer,
        source,
        noise_image,
        tmp_path / "out.mp4",
        batch_size=5,
        flicker=0.7,
        progress=False,
    )
    found = probe(tmp_path / "out.mp4")
    assert found["frames"] == FRAMES == report.frames
    assert found["fps"] == FPS and report.fps == FPS
    assert found["size"] == (WIDTH, HEIGHT)
    assert found["video_codec"] == "h264" and report.video_codec == "libx264"
    assert found["audio_codec"] == "aac" and found["audio_rate"] == SAMPLE_RATE
    assert report.audio == "copied (aac)"
    # flicker measured both ways in the same run: blending must lower it
    assert report.input_change > 0
    assert 0 < report.flicker_blended < report.flicker_raw
    assert "flicker" in report.summary()
    # the output really is the stylized clip (not the input passed through)
    with av.open(str(tmp_path / "out.mp4")) as out, av.open(str(source)) as inp:
        first_out = next(out.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        first_in = next(inp.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    assert np.abs(first_out - first_in).mean() > 10
    # written via mkstemp (0600): the final video must get the umask's mode
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.mp4").stat().st_mode) == 0o666 & ~umask


def test_no_blending_gives_equal_numbers_and_uncopyable_audio_is_reencoded(
    tiny_student_dir, noise_image, tmp_path
):
    source = make_video(tmp_path / "in.mov", audio="pcm_s16le")
    stylizer = Stylizer.from_pretrained(tiny_student_dir, device="cpu", size=64)
    code = stylizer.encode_style(noise_image)
    report = stylize_video(
        stylizer, source, code, tmp_path / "out.mp4", batch_size=4, max_frames=7, progress=False
    )
    assert report.flicker_blended == pytest.approx(report.flicker_raw)
    assert report.audio == "re-encoded pcm_s16le -> aac"
    found = probe(tmp_path / "out.mp4")
    assert found["frames"] == 7 and found["audio_codec"] == "aac"


def test_cli_helpers_run_a_video(tiny_student_dir, noise_image, tmp_path, capsys):
    from styledistill.images import save_image

    source = make_video(tmp_path / "clip.mp4", audio=None, frames=6)
    style_path = save_image(noise_image, tmp_path / "style.png")
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--style")
    parser.add_argument("--out")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    add_video_arguments(parser)
    args = parser.parse_args(
        [
            str(tiny_student_dir),
            "--video",
            str(source),
            "--style",
            str(style_path),
            "--out",
            str(tmp_path / "styled.mkv"),
            "--flicker-blend",
            "0.5",
        ]
    )
    assert run_video(args) == 0
    printed = capsys.readouterr().out
    assert (
        "6 frames 64x48" in printed
        and "with --flicker-blend 0.5" in printed
        and "no audio" in printed
    )
    assert probe(tmp_path / "styled.mkv")["frames"] == 6


def test_temporal_blender_smooths_still_areas_but_follows_motion():
    rng = np.random.default_rng(0)
    blender = TemporalBlender(0.8, threshold=0.06, block=8)
    still_input = np.full((32, 64, 3), 0.5, np.float32)
    outputs = []
    for step in range(6):
        frame_in = still_input.copy()
        frame_in[:, 32:] = 0.0 if step % 2 else 1.0  # right half: large change every frame
        stylized = np.clip(0.5 + rng.normal(0, 0.1, frame_in.shape), 0, 1).astype(np.float32)
        stylized[:, 32:] = frame_in[:, 32:]  # the stylizer follows the moving part
        outputs.append(blender(frame_in, stylized))
    still_change = np.mean(
        [np.abs(a[:, :32] - b[:, :32]).mean() for a, b in itertools.pairwise(outputs)]
    )
    moving = outputs[-1][:, 32:]
    assert still_change < 0.06  # unblended noise changes by ~0.11 per frame
    assert np.abs(moving - (0.0 if 5 % 2 else 1.0)).max() < 1e-6  # no smear where input moved


def test_bad_inputs_fail_with_one_line_errors(tiny_student_dir, noise_image, tmp_path):
    stylizer = Stylizer.from_pretrained(tiny_student_dir, device="cpu", size=64)
    with pytest.raises(VideoError, match="no such video file"):
        stylize_video(
            stylizer, tmp_path / "missing.mp4", noise_image, tmp_path / "o.mp4", progress=False
        )
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="cannot open as a video"):
        stylize_video(
            stylizer, tmp_path / "notes.mp4", noise_image, tmp_path / "o.mp4", progress=False
        )
    (tmp_path / "notes.jpg").write_text("not a video")  # FFmpeg's image demuxer opens it
    with pytest.raises(VideoError, match=r"notes\.jpg: not a readable video"):
        stylize_video(
            stylizer, tmp_path / "notes.jpg", noise_image, tmp_path / "o.mp4", progress=False
        )
    source = make_video(tmp_path / "ok.mp4", frames=2)
    with pytest.MonkeyPatch.context() as patch:  # a read-only output folder
        import errno
        import tempfile

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        patch.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(VideoError) as info:
            stylize_video(stylizer, source, noise_image, tmp_path / "ro" / "o.mp4", progress=False)
    assert str(info.value) == f"cannot write {tmp_path / 'ro' / 'o.mp4'}: Read-only file system"
    with pytest.raises(VideoError, match="output must end in"):
        stylize_video(
            stylizer, tmp_path / "notes.mp4", noise_image, tmp_path / "o.gif", progress=False
        )
    with pytest.raises(Exception, match=r"--flicker-blend 1.5"):
        stylize_video(
            stylizer,
            tmp_path / "notes.mp4",
            noise_image,
            tmp_path / "o.mp4",
            flicker=1.5,
            progress=False,
        )
    assert not (tmp_path / "o.mp4").exists()


def test_stylize_command_with_video_flag(tiny_student_dir, noise_image, tmp_path, capsys):
    from styledistill.cli import main
    from styledistill.images import save_image

    source = make_video(tmp_path / "clip.mp4")
    style = save_image(noise_image, tmp_path / "style.png")
    out = tmp_path / "clip_styled.mp4"
    code = main(
        [
            "stylize",
            str(tiny_student_dir),
            "--video",
            str(source),
            "--style",
            str(style),
            "--out",
            str(out),
            "--size",
            "64",
            "--flicker-blend",
            "0.5",
        ]
    )
    assert code == 0
    info = probe(out)
    assert info["frames"] == FRAMES and info["size"] == (WIDTH, HEIGHT)
    assert info["audio_codec"] == "aac"
    assert main(["stylize", str(tiny_student_dir), "--style", str(style)]) == 2
    assert "--content" in capsys.readouterr().err
