"""Rewrite MPEG-TS segments in place of re-encoding them: continuity, timestamps, corruption.

    padded = pad_continuity(ts_bytes)              # once, before caching
    served = shift_timestamps(padded, 90000 * 48)  # per request: PTS/DTS/PCR + 48 s
    broken = garble(served, fraction=0.5, seed=7)  # the corrupt-segment fault

Each cached segment is muxed on its own, so its continuity counters start at
0 on every PID. ffmpeg's demuxer marks a packet corrupt when a counter skips,
and HLS readers concatenate segments, so `pad_continuity` makes every PID carry
a multiple of 16 payload packets (repeating PSI tables, splitting a video
packet's payload over two stuffed packets). Any segment can then follow any
other one with continuous counters, and serving a looped segment at a later
position only needs its 33-bit timestamps moved, which is what
`shift_timestamps` does, without touching the H.264 payload.
"""

from __future__ import annotations

import random

PACKET = 188
SYNC = 0x47
NULL_PID = 0x1FFF
WRAP = 1 << 33  # PTS, DTS and PCR bases are 33-bit counters of a 90 kHz clock


def packets(data: bytes) -> list[bytes]:
    """Split a transport stream into 188-byte packets, checking the sync bytes."""
    if len(data) % PACKET:
        raise ValueError(f"transport stream length {len(data)} is not a multiple of {PACKET}")
    out = [data[i: i + PACKET] for i in range(0, len(data), PACKET)]
    if any(p[0] != SYNC for p in out):
        raise ValueError("transport stream lost sync")
    return out


def pid_of(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def payload_counts(data: bytes) -> dict[int, int]:
    """Count payload-carrying packets per PID (those that advance the continuity counter)."""
    counts: dict[int, int] = {}
    for p in packets(data):
        if p[3] & 0x10 and pid_of(p) != NULL_PID:
            counts[pid_of(p)] = counts.get(pid_of(p), 0) + 1
    return counts


def pad_continuity(data: bytes) -> bytes:
    """Return the segment with a multiple of 16 payload packets per PID and counters from 0."""
    pkts = packets(data)
    pes_pids = {pid_of(p) for p in pkts if p[1] & 0x40 and _payload(p)[:3] == b"\x00\x00\x01"}
    for pid, count in payload_counts(data).items():
        missing = -count % 16
        if not missing:
            continue
        if pid in pes_pids:
            pkts = _split_packets(pkts, pid, missing)
        else:
            last = max(i for i, p in enumerate(pkts) if pid_of(p) == pid and p[3] & 0x10)
            pkts[last + 1: last + 1] = [pkts[last]] * missing  # a PSI table repeated is harmless
    return _renumber(pkts)


def shift_timestamps(data: bytes, offset: int) -> bytes:
    """Return the segment with every PCR, PTS and DTS moved by offset ticks of 90 kHz."""
    out = bytearray(data)
    for start in range(0, len(out), PACKET):
        afc = (out[start + 3] >> 4) & 3
        body = start + 4
        if afc & 2:
            af_len = out[body]
            if af_len and out[body + 1] & 0x10:
                _shift_pcr(out, body + 2, offset)
            body += 1 + af_len
        if afc & 1 and out[start + 1] & 0x40 and out[body: body + 3] == b"\x00\x00\x01":
            _shift_pes(out, body, offset)
    return bytes(out)


def garble(data: bytes, fraction: float, seed: int) -> bytes:
    """Overwrite the payload of that fraction of packets with noise, keeping headers intact."""
    if fraction <= 0:
        return data
    rng = random.Random(seed)
    out = bytearray(data)
    for start in range(0, len(out), PACKET):
        if fraction >= 1 or rng.random() < fraction:
            out[start + 4: start + PACKET] = rng.randbytes(PACKET - 4)
    return bytes(out)


def _payload(packet: bytes) -> bytes:
    afc = (packet[3] >> 4) & 3
    if not afc & 1:
        return b""
    return packet[5 + packet[4]:] if afc & 2 else packet[4:]


def _adaptation(packet: bytes) -> bytes:
    """Return the adaptation field body (without its length byte), or b"" when absent."""
    if not (packet[3] >> 4) & 2:
        return b""
    return packet[5: 5 + packet[4]]


def _build(header: bytes, af_body: bytes, payload: bytes, pusi: bool) -> bytes:
    """Assemble a packet, filling the gap with adaptation-field stuffing."""
    b1 = (header[1] & 0xBF) | (0x40 if pusi else 0)
    room = PACKET - 4 - len(payload)
    if room == 0 and not af_body:
        return bytes([SYNC, b1, header[2], (header[3] & 0xC0) | 0x10]) + payload
    if room == 1:
        if af_body and any(af_body):
            raise ValueError("no room left for the adaptation field")
        af = b"\x00"
    else:
        body = af_body or b"\x00"
        if len(body) > room - 1:
            raise ValueError("no room left for the adaptation field")
        af = bytes([room - 1]) + body + b"\xff" * (room - 1 - len(body))
    return bytes([SYNC, b1, header[2], (header[3] & 0xC0) | 0x30]) + af + payload


def _split_packets(pkts: list[bytes], pid: int, times: int) -> list[bytes]:
    """Split `times` payload packets of pid in two, the largest payloads first."""
    for _ in range(times):
        best, best_len = -1, 1
        for i, p in enumerate(pkts):
            if pid_of(p) != pid or not p[3] & 0x10:
                continue
            size = len(_payload(p))
            # Keep a PES header whole in the first half: only split where it stays intact.
            usable = size - 32 if p[1] & 0x40 else size
            if usable > best_len:
                best, best_len = i, usable
        if best < 0:
            raise ValueError(f"PID {pid:#x} has no payload left to split")
        p = pkts[best]
        payload, af_body = _payload(p), _adaptation(p)
        cut = len(payload) - max(1, best_len // 2)
        first = _build(p, af_body, payload[:cut], pusi=bool(p[1] & 0x40))
        second = _build(p, b"", payload[cut:], pusi=False)
        pkts[best: best + 1] = [first, second]
    return pkts


def _renumber(pkts: list[bytes]) -> bytes:
    counters: dict[int, int] = {}
    out = bytearray()
    for p in pkts:
        pid = pid_of(p)
        cc = counters.get(pid, -1)
        if p[3] & 0x10:
            cc = (cc + 1) & 0xF
        counters[pid] = cc
        out += p[:3] + bytes([(p[3] & 0xF0) | (cc & 0xF)]) + p[4:]
    return bytes(out)


def _shift_pcr(buf: bytearray, at: int, offset: int) -> None:
    base = (buf[at] << 25) | (buf[at + 1] << 17) | (buf[at + 2] << 9) | (buf[at + 3] << 1) | (buf[at + 4] >> 7)
    base = (base + offset) % WRAP
    buf[at: at + 4] = bytes([(base >> 25) & 0xFF, (base >> 17) & 0xFF, (base >> 9) & 0xFF, (base >> 1) & 0xFF])
    buf[at + 4] = ((base & 1) << 7) | (buf[at + 4] & 0x7F)


def _shift_pes(buf: bytearray, at: int, offset: int) -> None:
    stream_id = buf[at + 3]
    if not (0xC0 <= stream_id <= 0xEF):  # only audio and video PES headers carry timestamps here
        return
    flags = buf[at + 7] >> 6
    if flags & 2:
        _shift_ts(buf, at + 9, offset)
    if flags == 3:
        _shift_ts(buf, at + 14, offset)


def _shift_ts(buf: bytearray, at: int, offset: int) -> None:
    ts = (((buf[at] >> 1) & 7) << 30) | (buf[at + 1] << 22) | ((buf[at + 2] >> 1) << 15) | (buf[at + 3] << 7) | (buf[at + 4] >> 1)
    ts = (ts + offset) % WRAP
    buf[at] = (buf[at] & 0xF0) | (((ts >> 30) & 7) << 1) | 1
    buf[at + 1] = (ts >> 22) & 0xFF
    buf[at + 2] = (((ts >> 15) & 0x7F) << 1) | 1
    buf[at + 3] = (ts >> 7) & 0xFF
    buf[at + 4] = ((ts & 0x7F) << 1) | 1
