"""Leave undecoded the end of each group of pictures that no sampled frame needs.

A camera analysed at 2 fps from a 25 fps stream keeps one frame in 12; every other
frame of an H.264/H.265 stream without B-frames (most IP cameras) is still decoded,
because later frames are predicted from it. But the frames after the last sampled one
of a group of pictures (GOP) are needed by nothing: the next sample is the next
keyframe, or later, and a closed GOP's keyframe (IDR) refers to nothing before it.
With a keyframe every second and samples every half second, half the decoding goes.

The next keyframe is predicted from the last three: evenly spaced, and spaced as many
frame periods as packets came between them (timestamps that barely advance, as some
cameras send, predict nothing). Once the next sample is due at or after the predicted
keyframe, the packets up to it are held back instead of decoded; when the keyframe
comes they are dropped. When the stream passes the predicted time without a keyframe
(a "smart" codec stretching its GOP on a still scene) the held packets are decoded after
all, in order, and the prediction starts again from three regular keyframes: no sample
is lost, the one due is only late by the catching up. Only IDR keyframes count: an open
GOP's keyframe (H.264 recovery point, HEVC CRA) lets frames after it refer to frames
before it. Packets without a picture (parameter sets, SEI) are never dropped.

With B-frames the decoder holds back the anchors it was fed until the frames between
them come, so the end of a GOP is judged late there and little is left out (on the
pipeline bench's footage nothing).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar

__all__ = ["GopTailSkipper", "is_idr_packet", "nal_length_size"]

_H264_IDR = 5
_H264_FIRST_NON_VCL = 6  # 1-5: slices; 6 on: SEI, parameter sets, delimiters, ...
_HEVC_IDR = (19, 20)  # IDR_W_RADL, IDR_N_LP
_HEVC_FIRST_NON_VCL = 32
_KEYFRAMES_FOR_A_PREDICTION = 3
# A GOP end of 24 s at 25 fps: past it, decode (a bound on memory, never reached in practice).
_MAX_HELD_PACKETS = 600


class _Packet(Protocol):
    """What the skipper reads of a PyAV packet."""

    is_keyframe: bool

    def __bytes__(self) -> bytes: ...


PacketT = TypeVar("PacketT", bound=_Packet)


def nal_length_size(codec_name: str, extradata: bytes | None) -> int | None:
    """Bytes of each NAL unit's length prefix in packets of this stream; None for Annex B (start codes).

    MP4 and Matroska store H.264/H.265 length-prefixed (an ``avcC``/``hvcC`` record in the
    extradata); RTSP and MPEG-TS carry Annex B start codes. Told apart as FFmpeg's decoders do:
    ``avcC`` starts with version 1; ``hvcC`` is whatever does not start with a start code.
    """
    if not extradata:
        return None
    if codec_name == "h264" and extradata[0] == 1 and len(extradata) > 4:
        return (extradata[4] & 0x03) + 1
    is_hvcc = extradata[0] != 0 or extradata[1] != 0 or extradata[2] > 1 if len(extradata) > 2 else False
    if codec_name == "hevc" and is_hvcc and len(extradata) > 21:
        return (extradata[21] & 0x03) + 1
    return None


def _nal_headers(data: bytes, length_size: int | None) -> list[int]:
    """The first header byte of each NAL unit in a packet."""
    headers: list[int] = []
    if length_size is not None:
        at = 0
        while at + length_size < len(data):
            size = int.from_bytes(data[at : at + length_size], "big")
            at += length_size
            if size <= 0 or at >= len(data):
                break
            headers.append(data[at])
            at += size
        return headers
    at = data.find(b"\x00\x00\x01")
    while at != -1 and at + 3 < len(data):
        headers.append(data[at + 3])
        at = data.find(b"\x00\x00\x01", at + 3)
    return headers


def _nal_types(data: bytes, codec_name: str, length_size: int | None) -> list[int]:
    """The NAL unit types in a packet (H.264: 5 bits, H.265: 6 bits)."""
    headers = _nal_headers(data, length_size)
    if codec_name == "hevc":
        return [(header >> 1) & 0x3F for header in headers]
    return [header & 0x1F for header in headers]


def is_idr_packet(data: bytes, codec_name: str, length_size: int | None) -> bool:
    """Whether a packet holds an IDR picture: a keyframe that closes its GOP (nothing after it refers before it).

    Args:
        data: The packet's bytes.
        codec_name: ``h264`` or ``hevc`` (any other codec: False).
        length_size: From ``nal_length_size``: length-prefixed NAL units, or None for start codes.
    """
    types = _nal_types(data, codec_name, length_size)
    if codec_name == "h264":
        return _H264_IDR in types
    if codec_name == "hevc":
        return any(nal_type in _HEVC_IDR for nal_type in types)
    return False


def _has_picture(data: bytes, codec_name: str, length_size: int | None) -> bool:
    """Whether a packet holds a slice of a picture (not only parameter sets, SEI or delimiters)."""
    types = _nal_types(data, codec_name, length_size)
    if codec_name == "hevc":
        return any(nal_type < _HEVC_FIRST_NON_VCL for nal_type in types)
    return any(0 < nal_type < _H264_FIRST_NON_VCL for nal_type in types)


class GopTailSkipper(Generic[PacketT]):
    """Routes a stream's packets: to the decoder, or held back while no sample needs them (see the module's docstring).

    Args:
        frame_period_s: The stream's frame period; half of it is the tolerance on keyframe times.
        codec_name: ``h264`` or ``hevc``: how its packets are read.
        length_size: The stream's NAL length prefix (``nal_length_size``), None for start codes.

    Attributes:
        skipped: Packets left undecoded so far.
        last_pts_s: The latest presentation time of any packet seen, decoded or not: where a
            looped file's pass ends.
    """

    def __init__(
        self, frame_period_s: float, *, codec_name: str = "h264", length_size: int | None = None
    ) -> None:
        self._frame_period_s = frame_period_s
        self._tolerance_s = frame_period_s / 2
        # A keyframe within this of the predicted time is on time: the frame before it is then
        # earlier than the next sample (held only from predicted - tolerance on), with a margin.
        self._on_time_s = 0.4 * frame_period_s
        self._codec_name = codec_name
        self._length_size = length_size
        self._keyframes: deque[float] = deque(maxlen=_KEYFRAMES_FOR_A_PREDICTION)
        self._packets_between: deque[int] = deque(maxlen=_KEYFRAMES_FOR_A_PREDICTION - 1)
        self._packets_since_keyframe = 0
        self._held: list[tuple[PacketT, bool]] = []  # held back, in order, and whether it holds a picture
        self.skipped = 0
        self.last_pts_s: float | None = None

    @property
    def next_keyframe_s(self) -> float | None:
        """When the next keyframe should come (stream seconds), or None when the last three do not tell.

        They tell when they are evenly spaced and their spacing matches the pictures between them.
        """
        if len(self._keyframes) < _KEYFRAMES_FOR_A_PREDICTION:
            return None
        first, second, last = self._keyframes
        intervals = (second - first, last - second)
        if abs(intervals[1] - intervals[0]) > self._tolerance_s:
            return None
        for interval, packets in zip(intervals, self._packets_between, strict=True):
            if abs(interval - packets * self._frame_period_s) > max(self._tolerance_s, 0.1 * interval):
                return None
        return last + intervals[1]

    def route(self, packet: PacketT, pts_s: float | None, *, next_due_s: float | None) -> list[PacketT]:
        """The packets to decode now, in order, for this one (a packet with data; call in decode order).

        Args:
            packet: The packet read.
            pts_s: Its presentation time (stream seconds), None when unstamped.
            next_due_s: When the sampler's next frame is due, None before the first.

        Returns:
            ``[packet]``; nothing while it is held back; or the held packets and it, when the
            keyframe they waited for is late.
        """
        if pts_s is not None:
            self.last_pts_s = pts_s if self.last_pts_s is None else max(self.last_pts_s, pts_s)
        predicted = self.next_keyframe_s
        is_on_time = predicted is not None and pts_s is not None and pts_s <= predicted + self._on_time_s
        if packet.is_keyframe:
            is_idr = is_idr_packet(bytes(packet), self._codec_name, self._length_size)
            packets = [packet]
            if self._held and is_idr and is_on_time:
                # The keyframe serves the next sample and nothing refers back past it; parameter
                # sets and SEI held in between still go to the decoder, the keyframe may need them.
                packets = [held for held, has_picture in self._held if not has_picture] + [packet]
                self.skipped += len(self._held) - (len(packets) - 1)
                self._held = []
            elif self._held:
                packets = self._catch_up(packet)
            self._keyframe(pts_s, is_idr=is_idr, is_late=predicted is not None and not is_on_time)
            return packets
        has_picture = _has_picture(bytes(packet), self._codec_name, self._length_size)
        self._packets_since_keyframe += has_picture  # frames, for the keyframes' spacing
        if self._held:
            is_waiting = (is_on_time or not has_picture) and len(self._held) < _MAX_HELD_PACKETS
            return self._hold(packet, has_picture=has_picture) if is_waiting else self._catch_up(packet)
        # Every frame before the predicted keyframe is earlier than the next sample, which the
        # keyframe (or a later frame) will serve: none of them is needed any more.
        if predicted is None or next_due_s is None or next_due_s < predicted - self._tolerance_s:
            return [packet]
        if not has_picture:
            return [packet]  # parameter sets or SEI: cheap, and the pictures after them may need them
        return self._hold(packet, has_picture=True)

    def _hold(self, packet: PacketT, *, has_picture: bool) -> list[PacketT]:
        """Keep ``packet`` back, in order; nothing to decode now."""
        self._held.append((packet, has_picture))
        return []

    def _catch_up(self, packet: PacketT) -> list[PacketT]:
        """The keyframe did not come when predicted: decode what was held, then ``packet``; predict afresh."""
        packets, self._held = [*(held for held, _ in self._held), packet], []
        self._keyframes.clear()
        self._packets_between.clear()
        return packets

    def _keyframe(self, pts_s: float | None, *, is_idr: bool, is_late: bool) -> None:
        """Count a keyframe towards the next prediction; a late, non-IDR, unstamped or earlier one starts it again."""
        if pts_s is None or not is_idr or is_late or (self._keyframes and pts_s <= self._keyframes[-1]):
            self._keyframes.clear()
            self._packets_between.clear()
        elif self._keyframes:
            self._packets_between.append(self._packets_since_keyframe + 1)
        if pts_s is not None and is_idr:
            self._keyframes.append(pts_s)
        self._packets_since_keyframe = 0
