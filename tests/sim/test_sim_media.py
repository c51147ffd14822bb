"""The stand-in's video: HLS playlists, real streamlink, H.264 segments, faults, thumbnails, cache."""

from __future__ import annotations

import io
import re

import av
import numpy as np
import pytest
import requests
import streamlink
from PIL import Image

from monitor.sim import StandIn, small_scenario
from monitor.sim.compose import ChannelVideo

av.logging.set_level(av.logging.PANIC)  # the corrupt-segment tests make ffmpeg complain on purpose


def _login(sim: StandIn, kind: str = "game") -> str:
    scenario = sim.scenario
    return next(c.login for c in scenario.channels
                if not scenario.truth(c.login).mislabeled and (scenario.rom_for(c) is None) == (kind == "chatting"))


def _playlist(sim: StandIn, login: str, variant: str = "360p") -> tuple[int, list[int], str]:
    text = requests.get(f"{sim.url}/live/{login}/{variant}/index.m3u8").text
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
    uris = [int(line[:-3]) for line in text.splitlines() if line.endswith(".ts")]
    return sequence, uris, text


def _segment(sim: StandIn, login: str, n: int, variant: str = "360p") -> bytes:
    answer = requests.get(f"{sim.url}/live/{login}/{variant}/{n}.ts")
    answer.raise_for_status()
    assert answer.headers["Content-Type"] == "video/mp2t"
    return answer.content


def _frames(data: bytes) -> list[av.VideoFrame]:
    try:
        with av.open(io.BytesIO(data)) as container:
            return list(container.decode(video=0))
    except av.error.FFmpegError:
        return []


def test_multivariant_playlist_names_the_variants_for_streamlink(sim):
    login = _login(sim)
    answer = requests.get(sim.stream_url.format(user_login=login))
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "RESOLUTION=640x360" in answer.text and "RESOLUTION=1280x720" in answer.text
    streams = streamlink.Streamlink().streams(sim.stream_url.format(user_login=login))
    assert {"360p", "720p"} <= set(streams)


def test_streamlink_sees_the_variants_of_a_clip(sim, helix):
    channel = sim.scenario.channels[0]
    clip = helix("/clips", {"broadcaster_id": channel.user_id}).json()["data"][0]
    streams = streamlink.Streamlink().streams(clip["url"])
    assert {"360p", "720p"} <= set(streams)


def test_live_window_is_long_and_advances_with_the_clock(sim, clock):
    login = _login(sim)
    sequence, uris, text = _playlist(sim, login)
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-TARGETDURATION:2" in text
    assert len(uris) >= 8 and uris == list(range(sequence, sequence + len(uris)))
    clock.advance(2.0)
    assert _playlist(sim, login)[0] == sequence + 1
    clock.advance(10.0)
    assert _playlist(sim, login)[1][-1] == uris[-1] + 6


def test_ad_break_freezes_the_playlist_then_it_resumes_without_a_gap(sim, clock):
    login = _login(sim)
    sequence = _playlist(sim, login)[0]
    sim.set_ad_break(login, 6.0)
    clock.advance(5.0)
    assert _playlist(sim, login)[0] == sequence
    clock.advance(3.0)  # 2 s past the end of the break: one new segment
    assert _playlist(sim, login)[0] == sequence + 1
    other = next(c.login for c in sim.scenario.channels if c.login != login)
    assert requests.get(f"{sim.url}/live/{other}/360p/index.m3u8").status_code == 200


def test_clip_playlist_is_a_vod_of_ten_seconds(sim, helix):
    clip = helix("/clips", {"broadcaster_id": sim.scenario.channels[0].user_id}).json()["data"][0]
    text = requests.get(clip["url"].replace("index.m3u8", "360p/index.m3u8")).text
    assert "#EXT-X-ENDLIST" in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert sum(float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)) == pytest.approx(10.0)


def test_segments_are_h264_of_the_variant_size_starting_with_a_keyframe(sim):
    login = _login(sim)
    last = _playlist(sim, login)[1][-1]
    for variant, size in (("360p", (640, 360)), ("720p", (1280, 720))):
        data = _segment(sim, login, last, variant)
        with av.open(io.BytesIO(data)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            packets = [p for p in container.demux(video=0) if p.size]
        assert packets[0].is_keyframe
        frames = _frames(data)
        assert len(frames) == 20 and (frames[0].width, frames[0].height) == size
        assert sim.counters.bytes_served(login, variant) == len(data)
    assert sim.counters.bytes_served(login, "160p") == 0


def test_a_read_across_the_loop_wrap_decodes_every_frame_in_order(sim, clock):
    login = _login(sim, "chatting")
    loop = sim.scenario.live_loop_segments
    last = _playlist(sim, login)[1][-1]
    wrap = (last // loop + 1) * loop  # the first segment of the next pass over the loop
    clock.advance((wrap + 1 - last) * 2.0)
    data = b"".join(_segment(sim, login, n) for n in range(wrap - 2, wrap + 2))
    with av.open(io.BytesIO(data)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert not any(p.is_corrupt for p in packets)
    assert all(b.pts - a.pts == 9000 for a, b in zip(packets, packets[1:], strict=False))
    assert len(_frames(data)) == 80


def test_offline_channel_has_no_playlists_segments_or_thumbnail(sim):
    login = _login(sim)
    last = _playlist(sim, login)[1][-1]
    sim.set_offline(login, True)
    for path in ("index.m3u8", "360p/index.m3u8", f"360p/{last}.ts"):
        assert requests.get(f"{sim.url}/live/{login}/{path}").status_code == 404
    assert requests.get(f"{sim.url}/previews/live_user_{login}-320x180.jpg").status_code == 404
    with pytest.raises(streamlink.StreamlinkError):
        streamlink.Streamlink().streams(sim.stream_url.format(user_login=login))
    sim.set_offline(login, False)
    assert requests.get(f"{sim.url}/live/{login}/index.m3u8").status_code == 200


def test_corrupt_segments_decode_only_partly(sim):
    login = _login(sim)
    window = _playlist(sim, login)[1][-3:]
    segments = [_segment(sim, login, n) for n in window]
    clean = b"".join(segments)
    assert len(_frames(clean)) == 60
    sim.set_corrupt(login, 0.5)
    broken = b"".join(_segment(sim, login, n) for n in window)
    assert len(broken) == len(clean) and broken != clean
    assert len(_frames(broken)) < 50
    sim.set_corrupt(login, 1.0)
    assert _frames(b"".join(_segment(sim, login, n) for n in window)) == []
    sim.set_corrupt(login, 0.0)
    assert _segment(sim, login, window[0]) == segments[0]


def test_thumbnails_are_jpegs_of_the_requested_size(sim, helix):
    stream = helix("/streams", {"first": 1}).json()["data"][0]
    for width, height in ((320, 180), (1280, 720)):
        answer = requests.get(stream["thumbnail_url"].format(width=width, height=height))
        assert answer.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(answer.content))
        assert image.format == "JPEG" and image.size == (width, height)
    clip = helix("/clips", {"broadcaster_id": stream["user_id"]}).json()["data"][0]
    assert Image.open(io.BytesIO(requests.get(clip["thumbnail_url"]).content)).size == (480, 272)
    box = helix("/games", {"id": "21779"}).json()["data"][0]["box_art_url"].format(width=52, height=72)
    assert Image.open(io.BytesIO(requests.get(box).content)).size == (52, 72)
    assert requests.get(stream["thumbnail_url"].format(width=0, height=10)).status_code == 404


def test_streamlink_reads_a_whole_clip_that_decodes_to_ten_seconds(sim, helix):
    clip = helix("/clips", {"broadcaster_id": sim.scenario.channels[0].user_id}).json()["data"][0]
    stream = streamlink.Streamlink().streams(clip["url"])["360p"]
    with stream.open() as fd:
        data = b"".join(iter(lambda: fd.read(65536), b""))
    frames = _frames(data)
    assert len(frames) == 10 * sim.scenario.fps and frames[0].height == 360
    assert sim.counters.clip_bytes_served(clip["id"], "360p") == len(data)


def test_segments_come_from_the_disk_cache_on_a_second_start(sim_cache, tmp_path):
    scenario = small_scenario()
    with StandIn(scenario, cache_dir=tmp_path) as first:
        login = _login(first)
        n = _playlist(first, login)[1][-1]
        original = _segment(first, login, n)
    cached = list((tmp_path / "segments").rglob("*.ts"))
    assert len(cached) == 1
    # Replace the cached bytes with a marker segment: a second start must serve it rather than re-encode.
    marker = bytes([0x47, 0x1F, 0xFF, 0x10]) + b"\xab" * 184
    cached[0].write_bytes(marker)
    with StandIn(scenario, cache_dir=tmp_path) as second:
        assert _segment(second, login, n) == marker
    assert original != marker


def test_channels_look_different_and_a_category_keeps_its_rom(sim_cache):
    scenario = small_scenario()
    lol = [c for c in scenario.channels if c.shows == "21779"][:2]
    chatting = next(c for c in scenario.channels if c.shows == "509658")
    videos = [ChannelVideo(scenario, c, "clip-0", 20, sim_cache) for c in (*lol, chatting)]
    frames = [video.frame(5) for video in videos]
    assert all(f.shape == (720, 1280, 3) for f in frames)
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 5
    assert scenario.rom_for(lol[0]) == scenario.rom_for(lol[1]) == "ms_pacman"
    assert not np.array_equal(videos[2].frame(0), videos[2].frame(7))  # the camera scene moves


def test_a_world_b_channel_is_served_as_h264_at_its_own_crf(sim_cache):
    from monitor.sim import stage
    from monitor.sim.worlds import generalization_worlds

    _, b = generalization_worlds()
    with StandIn(b, cache_dir=sim_cache) as world:
        crfs = {world.store.encoder_options(c)["crf"] for c in b.channels}
        assert len(crfs) >= 3
        login = next(c.login for c in b.channels if stage.look_of(b, c).encode.source != (1280, 720))
        n = _playlist(world, login)[1][-1]
        frames = _frames(_segment(world, login, n))
        assert len(frames) == b.frames_per_segment and (frames[0].width, frames[0].height) == (640, 360)
        frames = _frames(_segment(world, login, n, "720p"))  # scaled up from the channel's source size
        assert len(frames) == b.frames_per_segment and (frames[0].width, frames[0].height) == (1280, 720)
        thumb = requests.get(f"{world.url}/previews/live_user_{login}-320x180.jpg")
        assert Image.open(io.BytesIO(thumb.content)).size == (320, 180)
