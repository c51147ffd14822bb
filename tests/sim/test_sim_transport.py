"""TS rewriting: continuity padding, timestamp shifts and garbling, checked with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from monitor.sim import transport


def _segment(start_frame: int, frames: int = 10, size: int = 64) -> bytes:
    """Encode a tiny independent H.264 TS segment whose PTS starts at start_frame / 10 s."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "x264-params": "bframes=0"}
        rng = np.random.default_rng(start_frame)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size, size, 3), np.uint8), format="rgb24")
            frame.pts = start_frame + i
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _demux(data: bytes) -> list[av.Packet]:
    with av.open(io.BytesIO(data)) as container:
        return [p for p in container.demux(video=0) if p.size]


def _decoded(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_padding_makes_every_pid_a_multiple_of_16_and_keeps_the_video():
    raw = _segment(0)
    padded = transport.pad_continuity(raw)
    assert any(n % 16 for n in transport.payload_counts(raw).values())  # the case padding exists for
    assert all(n % 16 == 0 for n in transport.payload_counts(padded).values())
    assert [bytes(p) for p in _demux(padded)] == [bytes(p) for p in _demux(raw)]
    assert _decoded(padded) == 10


def test_independently_muxed_segments_concatenate_cleanly_only_after_padding():
    first, second = _segment(0), _segment(10)
    assert any(p.is_corrupt for p in _demux(first + second))  # continuity counters restart at 0
    joined = transport.pad_continuity(first) + transport.pad_continuity(second)
    packets = _demux(joined)
    assert not any(p.is_corrupt for p in packets)
    assert [p.pts for p in packets] == [i * 9000 for i in range(20)]
    assert _decoded(joined) == 20


def test_shift_timestamps_moves_pts_dts_and_pcr_without_touching_video():
    segment = transport.pad_continuity(_segment(0))
    later = transport.shift_timestamps(segment, 90_000 * 100)
    before, after = _demux(segment), _demux(later)
    assert [p.pts + 90_000 * 100 for p in before] == [p.pts for p in after]
    assert [p.dts + 90_000 * 100 for p in before] == [p.dts for p in after]
    assert [bytes(p) for p in before] == [bytes(p) for p in after]
    wrapped = transport.shift_timestamps(segment, transport.WRAP - 9000)  # 33-bit counters wrap
    assert [p.pts for p in _demux(wrapped)][1:3] == [0, 9000]


def test_garble_keeps_headers_and_breaks_payloads():
    segment = transport.pad_continuity(_segment(0))
    assert transport.garble(segment, 0.0, seed=1) == segment
    broken = transport.garble(segment, 1.0, seed=1)
    old, new = transport.packets(segment), transport.packets(broken)
    assert all(a[:4] == b[:4] and a[4:] != b[4:] for a, b in zip(old, new, strict=True))
    half = transport.packets(transport.garble(segment, 0.5, seed=1))
    changed = sum(a != b for a, b in zip(old, half, strict=True))
    assert 0.3 * len(old) < changed < 0.7 * len(old)


def test_packets_rejects_bytes_that_are_not_a_transport_stream():
    with pytest.raises(ValueError):
        transport.packets(b"\x00" * 188)
    with pytest.raises(ValueError):
        transport.packets(b"\x47" * 100)
