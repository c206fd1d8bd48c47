"""Video files in and out (PyAV): the writer keeps a clip's frames, size, rate, timestamps and sound, ends
in a playable file after an error or a stop; a clip is stylised a few frames at a time from a sample of
at most 16 frames; unreadable files are named."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
import torch

from depthstyle.depthstyle_core.errors import InputImageError, OperationCancelled, OutputError
from depthstyle.depthstyle_core.video import stylize_file
from depthstyle.depthstyle_core.video.files import VideoInfo, VideoWriter, probe, read_frames
from depthstyle.depthstyle_core.video.hold import TemporalHold
from depthstyle.depthstyle_core.video.stylize_file import sample_frames, stylize_video_file

from .video_clip_helpers import audio_span, mean_abs_255, pan_frames, pixel_format, write_clip

pytestmark = pytest.mark.usefixtures("single_thread")

NTSC = Fraction(30000, 1001)


def seconds(path) -> list[Fraction]:
    """Each frame's timestamp in seconds."""
    base = probe(path).time_base
    return [frame.pts * base for frame in read_frames(path)]


def pictures(path) -> torch.Tensor:
    return torch.cat([frame.picture for frame in read_frames(path)])


def silent_info(width: int, height: int, frames: int) -> VideoInfo:
    """A clip at 24 fps without sound."""
    return VideoInfo(width, height, Fraction(24), frames, time_base=Fraction(1, 24), has_audio=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """13 frames of a pan at 29.97 fps with sound, and the frames as written."""
    frames = pan_frames(13)
    return write_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", frames, rate=NTSC), frames


def test_probe_and_read_frames_see_what_was_written(clip):
    path, frames = clip
    info = probe(path)
    assert (info.width, info.height, info.rate, info.frames, info.has_audio) == (64, 48, NTSC, 13, True)
    decoded = list(read_frames(path))
    assert [frame.index for frame in decoded] == list(range(13))
    assert seconds(path) == [Fraction(1001 * i, 30000) for i in range(13)]
    assert decoded[0].picture.shape == (1, 3, 48, 64) and decoded[0].picture.dtype == torch.float32
    assert mean_abs_255(torch.cat([f.picture for f in decoded]), frames) < 4
    assert [frame.index for frame in read_frames(path, every=5)] == [0, 5, 10]


def test_the_writer_keeps_count_size_rate_timestamps_pixels_and_sound(clip, tmp_path):
    source, _ = clip
    info = probe(source)
    decoded = list(read_frames(source))
    out = tmp_path / "copy.mp4"
    with VideoWriter(out, info, audio_from=source) as writer:
        for frame in decoded:
            writer.write(frame.picture, frame.pts)
    assert writer.written == 13
    written = probe(out)
    assert (written.width, written.height, written.rate, written.frames) == (64, 48, NTSC, 13)
    assert written.has_audio and seconds(out) == seconds(source)
    assert mean_abs_255(pictures(out), torch.cat([f.picture for f in decoded])) < 4
    assert pixel_format(out) == "yuv420p", "even sizes play everywhere by default"
    packets, _, end = audio_span(out)
    assert packets > 10 and abs(end - Fraction(13) / NTSC) < Fraction(2048, 48000), "all of the sound"

    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, info) as writer:  # no pts: the next one at the clip's rate
        for frame in decoded:
            writer.write(frame.picture[0])
    assert not probe(silent).has_audio
    assert seconds(silent) == [Fraction(1001 * i, 30000) for i in range(13)]


def test_full_chroma_writes_444_and_keeps_colour_texture_closer(tmp_path):
    frames = pan_frames(6)
    info = silent_info(64, 48, 6)
    errors = {}
    for full in (False, True):
        out = tmp_path / f"full_{full}.mp4"
        with VideoWriter(out, info, full_chroma=full) as writer:
            for frame in frames:
                writer.write(frame)
        assert pixel_format(out) == ("yuv444p" if full else "yuv420p")
        assert probe(out).frames == 6
        errors[full] = mean_abs_255(pictures(out), frames)
    assert errors[True] < errors[False] < 4


def test_an_odd_sized_clip_is_written_444_and_reads_back_at_its_size(tmp_path):
    frames = pan_frames(5, width=33, height=25, shift=1)
    info = silent_info(33, 25, 5)
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, info) as writer:
        for frame in frames:
            writer.write(frame[None])
    written = probe(out)
    assert (written.width, written.height, written.frames, written.rate) == (33, 25, 5, 24)
    assert pixel_format(out) == "yuv444p"
    back = pictures(out)
    assert back.shape == (5, 3, 25, 33) and mean_abs_255(back, frames) < 4
    assert seconds(out) == [Fraction(i, 24) for i in range(5)]


def test_a_frame_of_another_size_is_refused_with_both_sizes(clip, tmp_path):
    with VideoWriter(tmp_path / "x.mp4", probe(clip[0])) as writer:
        with pytest.raises(OutputError, match=r"frame 1 is \(3, 40, 64\), the video is 64x48"):
            writer.write(torch.zeros(1, 3, 40, 64))


def test_a_writer_closed_by_an_error_leaves_a_playable_file_of_the_frames_written(clip, tmp_path):
    source, _ = clip
    info = probe(source)
    decoded = list(read_frames(source))
    out = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, info, audio_from=source) as writer:
            for frame in decoded:
                if frame.index == 5:
                    raise RuntimeError("boom")
                writer.write(frame.picture, frame.pts)
    written = probe(out)
    assert written.frames == 5 and (written.width, written.height, written.rate) == (64, 48, NTSC)
    assert len(list(read_frames(out))) == 5
    assert seconds(out) == seconds(source)[:5]
    assert mean_abs_255(pictures(out), torch.cat([f.picture for f in decoded[:5]])) < 4
    packets, last_start, _ = audio_span(out)
    assert packets > 0 and last_start < Fraction(5) / NTSC, "sound only up to the last frame written"


def test_unreadable_missing_and_silent_only_files_are_named(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video at all" * 40)
    for read in (probe, lambda path: next(read_frames(path))):
        with pytest.raises(InputImageError, match=r"broken\.mp4 is not a video file FFmpeg can read"):
            read(broken)
        with pytest.raises(InputImageError, match=r"video not found: .*gone\.mp4"):
            read(tmp_path / "gone.mp4")
    sound = tmp_path / "sound.mp4"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        piece = av.AudioFrame.from_ndarray(torch.zeros(1, 1024).numpy(), format="fltp", layout="mono")
        piece.sample_rate, piece.pts = 48000, 0
        out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    with pytest.raises(InputImageError, match=r"sound\.mp4 has no video stream"):
        probe(sound)


def damaged_copy(source, target):
    """``source`` with its first video packet's bytes zeroed: the container is intact, the picture not."""
    data = source.read_bytes()
    with av.open(str(source)) as container:
        payload = bytes(next(p for p in container.demux(container.streams.video[0]) if p.size))
    at = data.index(payload)
    target.write_bytes(data[:at] + bytes(len(payload)) + data[at + len(payload) :])
    return target




def test_a_clip_whose_first_frame_cannot_be_decoded_is_named_when_read(tmp_path):
    source = write_clip(tmp_path / "src.mp4", pan_frames(6), audio=False)
    damaged = damaged_copy(source, tmp_path / "damaged.mp4")
    assert probe(damaged).frames == 6, "the header still counts the frames"
    with pytest.raises(InputImageError, match=r"damaged\.mp4"):
        list(read_frames(damaged))


def test_a_clip_without_a_frame_count_and_a_damaged_first_frame_is_named_when_probed(tmp_path):
    source = write_clip(tmp_path / "src.mkv", pan_frames(6), audio=False)
    damaged = damaged_copy(source, tmp_path / "damaged.mkv")
    with pytest.raises(InputImageError, match=r"damaged\.mkv"):
        probe(damaged)


def test_sample_frames_are_at_most_16_spread_over_the_clip_first_and_last_included(tmp_path, monkeypatch):
    frames = pan_frames(40, shift=1)
    path = write_clip(tmp_path / "long.mp4", frames, audio=False)
    decoded = pictures(path)

    def indices(sample: torch.Tensor) -> list[int]:
        found = [[i for i in range(len(decoded)) if torch.equal(decoded[i], s)] for s in sample]
        assert all(len(match) == 1 for match in found), "each sampled frame is one frame of the clip"
        return [match[0] for match in found]

    picked = indices(sample_frames(path))
    assert len(picked) == 16 and picked[0] == 0 and picked[-1] == 39
    assert all(0 < b - a <= 3 for a, b in zip(picked, picked[1:], strict=False)), picked

    monkeypatch.setattr(stylize_file, "SAMPLE_BYTES", 5 * 3 * 4 * 64 * 48)
    assert indices(sample_frames(path)) == [0, 10, 20, 29, 39], "large frames: fewer of them"
    monkeypatch.undo()

    short = write_clip(tmp_path / "short.mp4", frames[:6], audio=False)
    assert torch.equal(sample_frames(short), pictures(short)), "a short clip: all its frames"


class RecordingPainter:
    """Paints the negative of each frame and records the batch sizes it gets, and how many frames had
    been decoded when it got each."""

    def __init__(self, decoded: list[int]) -> None:
        self.sizes: list[int] = []
        self.decoded_then: list[int] = []
        self._decoded = decoded

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, None]:
        self.sizes.append(frames.shape[0])
        self.decoded_then.append(self._decoded[0])
        return 1 - frames, None


@pytest.fixture
def counted_reads(monkeypatch) -> list[int]:
    """Counts the frames the stylisation has decoded so far."""
    decoded = [0]
    real = stylize_file.read_frames

    def counting(path, every=1):
        for frame in real(path, every):
            decoded[0] += 1
            yield frame

    monkeypatch.setattr(stylize_file, "read_frames", counting)
    return decoded


def test_a_clip_is_painted_a_chunk_at_a_time_as_it_is_read(clip, tmp_path, counted_reads):
    source, _ = clip
    painter = RecordingPainter(counted_reads)
    progress = []
    out = tmp_path / "negative.mp4"
    result = stylize_video_file(source, out, painter, chunk=4, on_progress=lambda *a: progress.append(a))
    assert painter.sizes == [4, 4, 4, 1] and max(painter.sizes) <= 4
    assert painter.decoded_then == [4, 8, 12, 13], "frames are painted as they come, not after the clip"
    assert progress == [(4, 13), (8, 13), (12, 13), (13, 13)]
    assert (result.path, result.written, result.total, result.cuts) == (out, 13, 13, ()) and result.complete
    written = probe(out)
    assert (written.frames, written.width, written.height, written.rate) == (13, 64, 48, NTSC)
    assert written.has_audio
    assert seconds(out) == seconds(source)
    assert mean_abs_255(pictures(out), 1 - pictures(source)) < 4

    default = RecordingPainter([0])
    stylize_video_file(source, tmp_path / "default.mp4", default)
    assert max(default.sizes) == stylize_file.CHUNK_FRAMES and sum(default.sizes) == 13


def test_a_stop_after_the_first_part_raises_and_leaves_a_playable_file_of_that_part(clip, tmp_path):
    source, _ = clip
    painter = RecordingPainter([0])
    out = tmp_path / "stopped.mp4"
    with pytest.raises(OperationCancelled, match=r"stopped after 4 of 13 frames; .*stopped\.mp4 holds them"):
        stylize_video_file(source, out, painter, chunk=4, should_stop=lambda: True)
    assert painter.sizes == [4]
    written = probe(out)
    assert written.frames == 4 and written.frames % 4 == 0 and written.rate == NTSC
    assert len(list(read_frames(out))) == 4 and seconds(out) == seconds(source)[:4]
    assert mean_abs_255(pictures(out), 1 - pictures(source)[:4]) < 4
    packets, last_start, _ = audio_span(out)
    assert packets > 0 and last_start < Fraction(4) / NTSC


def test_the_output_may_not_be_the_clip_being_read(clip):
    source, _ = clip
    with pytest.raises(InputImageError, match="would overwrite the video being read"):
        stylize_video_file(source, source.parent / "." / source.name, RecordingPainter([0]))


def test_held_frames_find_a_scene_cut_in_a_file(tmp_path):
    frames = torch.cat([pan_frames(6, seed=3), pan_frames(6, seed=11)])
    source = write_clip(tmp_path / "cut.mp4", frames, audio=False)
    copy = lambda frames: (frames.clone(), None)  # noqa: E731
    result = stylize_video_file(source, tmp_path / "held.mp4", copy, hold=TemporalHold())
    assert result.cuts == (6,) and result.written == 12
    assert mean_abs_255(pictures(tmp_path / "held.mp4"), pictures(source)) < 4, "holding a copy keeps it"
