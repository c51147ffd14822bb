"""Write the stand-in's HLS playlists: multivariant, live sliding window, VOD.

    multivariant(VARIANTS.values(), fps=10)      # names the variants "160p", "360p", "720p"
    live_media(first=120, last=129, seconds=2, now=time.time())
    vod_media(count=5, seconds=2)

Pure text builders; the server decides which sequence numbers are live.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from monitor.sim.encode import Variant


def multivariant(variants: Iterable[Variant], fps: int) -> str:
    """Return a Twitch-style multivariant playlist; relative URIs <variant>/index.m3u8."""
    lines = ["#EXTM3U", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: -v.height):
        group = f"{v.name}{fps}"
        lines += [
            f'#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="{group}",NAME="{v.name}",AUTOSELECT=YES,DEFAULT=YES',
            f'#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},RESOLUTION={v.width}x{v.height},CODECS="{v.codecs}",'
            f'VIDEO="{group}",FRAME-RATE={fps:.3f}',
            f"{v.name}/index.m3u8",
        ]
    return "\n".join(lines) + "\n"


def live_media(first: int, last: int, seconds: int, now: float) -> str:
    """Return a live media playlist listing segments first..last (no ENDLIST)."""
    lines = [
        "#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{seconds}", f"#EXT-X-MEDIA-SEQUENCE:{first}",
    ]
    for n in range(first, last + 1):
        # The newest segment ended just now; older ones one segment length apart.
        stamp = datetime.fromtimestamp(now - (last + 1 - n) * seconds, tz=UTC)
        lines += [
            f"#EXT-X-PROGRAM-DATE-TIME:{stamp.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
            f"#EXTINF:{seconds:.3f},live",
            f"{n}.ts",
        ]
    return "\n".join(lines) + "\n"


def vod_media(count: int, seconds: int) -> str:
    """Return a VOD media playlist of segments 0..count-1 with ENDLIST."""
    lines = [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-PLAYLIST-TYPE:VOD", f"#EXT-X-TARGETDURATION:{seconds}",
        "#EXT-X-MEDIA-SEQUENCE:0",
    ]
    for n in range(count):
        lines += [f"#EXTINF:{seconds:.3f},", f"{n}.ts"]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
