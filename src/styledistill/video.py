"""Stylize a video file with a student: decode with PyAV, batch frames, encode H.264.

The style is encoded once and reused for every frame. Audio is kept: copied
packet for packet when the output container can hold its codec, re-encoded (AAC)
otherwise. Output is written to a temporary file next to ``out_path`` and renamed
at the end, so a crash never leaves a half-written video under the final name.

Flicker. A per-frame stylizer sees each frame on its own, so small input changes
(sensor noise, compression artefacts, a moving object elsewhere that shifts the
attention) make the whole output shimmer. ``flicker=ALPHA`` blends each output with
the previous *blended* output (an exponential moving average) where the input did
not change, and not where it did: the blend weight is ``ALPHA * gate`` with
``gate = clip(1 - local_input_change / threshold, 0, 1)``, the change averaged over
small blocks. Static areas settle, moving areas and scene cuts follow the new frame
at once, so motion is not smeared.

Flicker number: mean absolute frame-to-frame change of the output divided by that
of the input (1.0 = the output changes as much as the input). The report gives it
without blending and with it, both measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, MissingDependencyError, StyledistillError
from .plumbing import atomic_path, path_problem
from .runtime import progress_bar

__all__ = [
    "FlickerMeter",
    "TemporalBlender",
    "VideoError",
    "VideoReport",
    "check_video_paths",
    "stylize_video",
]

#: Output containers we write and the audio codecs each can hold as-is (copy).
_AUDIO_COPY_OK: dict[str, set[str]] = {
    ".mp4": {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"},
    ".m4v": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": {"aac", "mp3", "opus", "vorbis", "ac3", "eac3", "flac", "alac", "pcm_s16le"},
}
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoError(StyledistillError, ValueError):
    """A video file that cannot be read or written; the message names it."""


@dataclass
class VideoReport:
    """What :func:`stylize_video` did, with the flicker numbers it measured."""

    input: str
    output: str
    frames: int
    fps: float
    width: int
    height: int
    video_codec: str
    audio: str
    flicker_blend: float
    #: mean |frame t - frame t-1| of the input, in [0, 1] units
    input_change: float
    #: output change / input change, without blending (what the stylizer alone gives)
    flicker_raw: float
    #: output change / input change, with blending (equal to flicker_raw when alpha is 0)
    flicker_blended: float
    seconds: float
    #: the input's frame size when it was odd and the output lost its last row/column
    #: (H.264 yuv420p needs even sizes); None when nothing was cropped
    cropped_from: tuple[int, int] | None = None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["frames_per_second"] = self.frames_per_second
        return data

    def summary(self) -> str:
        audio = f", audio {self.audio}" if self.audio != "none" else ", no audio"
        text = (
            f"{self.output}: {self.frames} frames {self.width}x{self.height} @ {self.fps:.3g} fps "
            f"({self.video_codec}{audio}) in {self.seconds:.1f} s "
            f"({self.frames_per_second:.2f} frames/s); flicker (output/input change) "
            f"{self.flicker_raw:.3g} without blending"
        )
        if self.flicker_blend > 0:
            text += f", {self.flicker_blended:.3g} with --flicker-blend {self.flicker_blend:g}"
        if self.cropped_from is not None:
            source_w, source_h = self.cropped_from
            text += (
                f"; cropped {source_w}x{source_h} -> {self.width}x{self.height} "
                "(H.264 needs even sizes)"
            )
        return text


# --------------------------------------------------------------------------- flicker


class FlickerMeter:
    """Accumulates mean absolute frame-to-frame change of a frame sequence."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self.total = 0.0
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        """``frame``: float32 ``[H, W, 3]`` in [0, 1]."""
        if self._previous is not None:
            self.total += float(np.abs(frame - self._previous).mean())
            self.count += 1
        self._previous = frame

    @property
    def mean_change(self) -> float:
        return self.total / self.count if self.count else 0.0


def flicker_ratio(output_change: float, input_change: float) -> float:
    """Output change per unit of input change; NaN for a perfectly still input."""
    if input_change <= 0:
        return float("nan") if output_change > 0 else 1.0
    return output_change / input_change


def _block_mean(change: np.ndarray, block: int) -> np.ndarray:
    """Average ``[H, W]`` over ``block x block`` tiles and spread it back (same shape)."""
    height, width = change.shape
    pad_h, pad_w = (-height) % block, (-width) % block
    padded = np.pad(change, ((0, pad_h), (0, pad_w)), mode="edge")
    tiles = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block)
    means = tiles.mean(axis=(1, 3))
    spread = np.repeat(np.repeat(means, block, axis=0), block, axis=1)
    return spread[:height, :width]


class TemporalBlender:
    """Exponential moving average of outputs, gated by how much the input changed.

    ``alpha`` in [0, 1): weight of the previous output where the input is still.
    ``threshold``: block-averaged mean absolute input change (0-1 units) at which the
    gate closes completely (the new output is used as is). ``block``: gate resolution
    in pixels; blocks keep the gate from following single noisy pixels.
    """

    def __init__(self, alpha: float, *, threshold: float = 0.06, block: int = 16) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ConfigError(f"--flicker-blend {alpha}: must be in [0, 1)")
        if threshold <= 0:
            raise ConfigError(f"--flicker-threshold {threshold}: must be > 0")
        self.alpha = float(alpha)
        self.threshold = float(threshold)
        self.block = int(block)
        self._previous_input: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None

    def __call__(self, frame_in: np.ndarray, frame_out: np.ndarray) -> np.ndarray:
        """Blend one stylized frame; both arrays float32 ``[H, W, 3]`` in [0, 1]."""
        if self.alpha == 0.0 or self._previous_output is None:
            blended = frame_out
        else:
            change = np.abs(frame_in - self._previous_input).mean(axis=2)
            change = _block_mean(change, self.block)
            gate = np.clip(1.0 - change / self.threshold, 0.0, 1.0)
            weight = (self.alpha * gate)[:, :, None].astype(np.float32)
            blended = weight * self._previous_output + (1.0 - weight) * frame_out
        self._previous_input = frame_in
        self._previous_output = blended
        return blended


# --------------------------------------------------------------------------- pipeline


def _require_av():
    try:
        import av
    except ImportError:
        raise MissingDependencyError("av", "video", "video stylization") from None
    return av


def _pick_video_codec(av) -> str:
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    raise VideoError("no H.264 (libx264) or MPEG-4 encoder in this PyAV build")


def _frame_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate).limit_denominator(1001 * 1000)
    return Fraction(25, 1)


def _count_frames(stream, container) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    else:
        return None
    return max(1, round(seconds * float(_frame_rate(stream))))


def _style_code(stylizer, style):
    """Encode the style once, unless it is already a code."""
    if hasattr(style, "memory") or type(style).__name__ == "StyleCode":
        return style
    from .images import load_image

    if isinstance(style, (str, os.PathLike)):
        style = load_image(style)
    return stylizer.encode_style(style)


def _stylize_frames(stylizer, code, frames: list[np.ndarray]) -> np.ndarray:
    """uint8 ``[B, H, W, 3]`` frames -> float32 ``[B, H, W, 3]`` stylized in [0, 1]."""
    import torch

    batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.inference_mode():
        out = stylizer.stylize_tensor(batch, code)
    out = out.detach().to("cpu", torch.float32).clamp_(0.0, 1.0)
    if tuple(out.shape[-2:]) != tuple(batch.shape[-2:]):
        raise VideoError(
            f"stylizer returned {tuple(out.shape[-2:])} frames for {tuple(batch.shape[-2:])} input"
        )
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def check_video_paths(in_path: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """The input is a file and the output a container this writer knows (before any work)."""
    in_path, out_path = Path(in_path), Path(out_path)
    problem = path_problem(in_path, "file", "video file")
    if problem:
        raise VideoError(f"{in_path}: {problem}")
    if out_path.suffix.lower() not in _FORMATS:
        raise VideoError(f"{out_path}: output must end in {', '.join(_FORMATS)}")
    if out_path.resolve() == in_path.resolve():
        raise VideoError(f"{out_path}: output would overwrite the input video")


def stylize_video(
    stylizer,
    in_path: str | os.PathLike,
    style,
    out_path: str | os.PathLike,
    *,
    batch_size: int = 8,
    flicker: float = 0.0,
    flicker_threshold: float = 0.06,
    crf: int = 18,
    max_frames: int | None = None,
    progress: bool = True,
) -> VideoReport:
    """Stylize every frame of ``in_path`` with one style and write ``out_path``.

    ``stylizer`` needs ``encode_style(image)`` and ``stylize_tensor(frames [B,3,H,W],
    code) -> [B,3,H,W]`` (the student's :class:`Stylizer`). ``style``: an image path,
    an image, or a code from ``stylizer.encode_style``. Frames are stylized
    ``batch_size`` at a time; ``flicker`` is the temporal blending weight (0 = off).
    Output: H.264 (libx264, else MPEG-4 part 2) at the input frame rate and size
    (an odd width/height loses its last pixel: yuv420p needs even sizes), audio kept.
    """
    av = _require_av()
    in_path, out_path = Path(in_path), Path(out_path)
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be >= 1")
    check_video_paths(in_path, out_path)
    suffix = out_path.suffix.lower()
    blender = TemporalBlender(flicker, threshold=flicker_threshold)
    code = _style_code(stylizer, style)

    try:
        source = av.open(str(in_path), "r")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{in_path}: cannot open as a video ({exc})") from None
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp_name = str(stack.enter_context(atomic_path(out_path, suffix=suffix)))
        except OSError as exc:  # read-only or no permission: name the output, not a temp file
            source.close()
            raise VideoError(f"cannot write {out_path}: {exc.strerror or exc}") from None
        with source:
            clip = _InputVideo.read(source, in_path, max_frames)
            with av.open(tmp_name, "w", format=_FORMATS[suffix]) as sink:
                encoder = _FrameEncoder(av, sink, clip, crf, stylizer, code, blender)
                audio_mode, out_audio = _add_audio_stream(sink, clip.audio, suffix)
                bar = progress_bar(
                    total=clip.total, unit="frame", desc=f"stylize {in_path.name}", enabled=progress
                )
                _transcode(
                    source, clip, encoder, bar, batch_size, max_frames, audio_mode, out_audio
                )
                bar.close()
                encoder.close()
                if audio_mode == "encode":
                    for packet in out_audio.encode(None):
                        sink.mux(packet)
        if encoder.written == 0:
            raise VideoError(f"{in_path}: no video frames could be decoded")
    return encoder.report(in_path, out_path, audio_mode, time.perf_counter() - start)


@dataclass
class _InputVideo:
    """The input's streams and what the output takes from them (size, rate, frame count)."""

    video: Any
    audio: Any
    width: int
    height: int
    fps: Fraction
    total: int | None

    @classmethod
    def read(cls, source, in_path: Path, max_frames: int | None) -> _InputVideo:
        if not source.streams.video:
            raise VideoError(f"{in_path}: has no video stream")
        video = source.streams.video[0]
        video.thread_type = "AUTO"
        width, height = video.codec_context.width, video.codec_context.height
        if not width or not height:
            raise VideoError(f"{in_path}: not a readable video (no frame size in its video stream)")
        total = _count_frames(video, source)
        if max_frames is not None and total is not None:
            total = min(total, max_frames)
        audio = source.streams.audio[0] if source.streams.audio else None
        return cls(video, audio, width, height, _frame_rate(video), total)

    @property
    def out_size(self) -> tuple[int, int]:
        """(width, height) rounded down to even numbers: yuv420p needs them."""
        return self.width - self.width % 2, self.height - self.height % 2


class _FrameEncoder:
    """The output's video stream: stylizes pending frames in batches, blends them against
    flicker, measures the flicker numbers and encodes the frames in order."""

    def __init__(self, av, sink, clip: _InputVideo, crf: int, stylizer, code, blender) -> None:
        self.av, self.sink, self.clip = av, sink, clip
        self.stylizer, self.code, self.blender = stylizer, code, blender
        self.codec_name = _pick_video_codec(av)
        out_w, out_h = clip.out_size
        self.stream = sink.add_stream(self.codec_name, rate=clip.fps)
        self.stream.width, self.stream.height = out_w, out_h
        self.stream.pix_fmt = "yuv420p"
        if self.codec_name == "libx264":
            self.stream.options = {"crf": str(crf), "preset": "medium"}
        else:
            self.stream.bit_rate = max(2_000_000, out_w * out_h * 8)
        self.meter_in, self.meter_raw, self.meter_out = (
            FlickerMeter(),
            FlickerMeter(),
            FlickerMeter(),
        )
        self.pending: list[np.ndarray] = []
        self.written = 0

    def flush(self) -> int:
        """Stylize, blend and encode the pending frames; returns how many there were."""
        count = len(self.pending)
        if not count:
            return 0
        out_w, out_h = self.clip.out_size
        stylized = _stylize_frames(self.stylizer, self.code, self.pending)
        for raw_in, raw_out in zip(self.pending, stylized):
            frame_in = raw_in.astype(np.float32) / 255.0
            self.meter_in.add(frame_in)
            self.meter_raw.add(raw_out)
            blended = self.blender(frame_in, raw_out)
            self.meter_out.add(blended)
            pixels = (np.clip(blended, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            frame = self.av.VideoFrame.from_ndarray(pixels[:out_h, :out_w], format="rgb24")
            frame.pts = self.written
            frame.time_base = Fraction(1, 1) / self.clip.fps
            for packet in self.stream.encode(frame):
                self.sink.mux(packet)
            self.written += 1
        self.pending.clear()
        return count

    def close(self) -> None:
        """Drain the encoder's buffered packets into the file."""
        for packet in self.stream.encode(None):
            self.sink.mux(packet)

    def report(self, in_path: Path, out_path: Path, audio_mode: str, seconds: float) -> VideoReport:
        clip, (out_w, out_h) = self.clip, self.clip.out_size
        audio = clip.audio.codec_context.name if clip.audio is not None else None
        audio_text = {
            "none": "none",
            "copy": f"copied ({audio})" if audio else "none",
            "encode": f"re-encoded {audio} -> aac" if audio else "none",
        }[audio_mode]
        return VideoReport(
            input=str(in_path),
            output=str(out_path),
            frames=self.written,
            fps=float(clip.fps),
            width=out_w,
            height=out_h,
            video_codec=self.codec_name,
            audio=audio_text,
            flicker_blend=self.blender.alpha,
            input_change=self.meter_in.mean_change,
            flicker_raw=flicker_ratio(self.meter_raw.mean_change, self.meter_in.mean_change),
            flicker_blended=flicker_ratio(self.meter_out.mean_change, self.meter_in.mean_change),
            seconds=seconds,
            cropped_from=(clip.width, clip.height)
            if (out_w, out_h) != (clip.width, clip.height)
            else None,
        )


def _transcode(
    source,
    clip: _InputVideo,
    encoder: _FrameEncoder,
    bar,
    batch_size: int,
    max_frames: int | None,
    audio_mode: str,
    out_audio,
) -> None:
    """Read the input's packets in order: video frames go to ``encoder`` ``batch_size`` at
    a time (up to ``max_frames``), audio is copied or re-encoded alongside."""
    streams = [clip.video] + ([clip.audio] if clip.audio is not None else [])
    done = False
    for packet in source.demux(*streams):
        if packet.stream.type == "video":
            if done:
                continue
            for frame in packet.decode():
                encoder.pending.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and encoder.written + len(encoder.pending) >= max_frames:
                    done = True
                    break
                if len(encoder.pending) >= batch_size:
                    bar.update(encoder.flush())
            if done:
                bar.update(encoder.flush())
        else:
            _handle_audio(
                encoder.sink, packet, audio_mode, out_audio, clip.fps, encoder.written, done
            )
    bar.update(
        encoder.flush()
    )  # demux ends each stream with an empty packet that drains the decoder


def _add_audio_stream(sink, in_audio, suffix: str):
    """("none"|"copy"|"encode", output stream or None) for the input's audio."""
    if in_audio is None:
        return "none", None
    name = in_audio.codec_context.name
    if name in _AUDIO_COPY_OK[suffix]:
        return "copy", sink.add_stream_from_template(in_audio)
    rate = in_audio.codec_context.sample_rate or 48000
    out_audio = sink.add_stream("aac", rate=rate)
    layout = in_audio.codec_context.layout
    if layout is not None and layout.nb_channels in (1, 2):
        out_audio.layout = layout.name
    else:
        out_audio.layout = "stereo"
    return "encode", out_audio


def _handle_audio(sink, packet, mode: str, out_audio, fps, written: int, done: bool) -> None:
    if mode == "none" or packet.dts is None:
        return
    past_end = (
        done
        and packet.pts is not None
        and packet.time_base is not None
        and float(packet.pts * packet.time_base) > written / float(fps)
    )
    if past_end:  # with max_frames, drop audio after the last written video frame
        return
    if mode == "copy":
        packet.stream = out_audio
        sink.mux(packet)
        return
    for frame in packet.decode():
        frame.pts = None  # let the encoder's resampler count samples
        for out_packet in out_audio.encode(frame):
            sink.mux(out_packet)
