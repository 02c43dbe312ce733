"""Leave undecoded the end of each group of pictures that no sampled frame needs.

A camera analysed at 2 fps from a 25 fps stream keeps one frame in 12; every other
frame of an H.264/H.265 stream without B-frames (most IP cameras) is still decoded,
because later frames are predicted from it. But the frames after the last sampled one
of a group of pictures (GOP) are needed by nothing: the next sample is the next
keyframe, or later, and a closed GOP's keyframe (IDR) refers to nothing before it.
With a keyframe every second and samples every half second, half the decoding goes.

The next keyframe is predicted from the last three (a regular interval), so the end is
left undecoded only while the stream keeps to it: once skipping has begun, every packet
up to the next keyframe is left undecoded (none of them could be decoded without the
ones before), so a keyframe later than predicted delays the sample due before it to
that keyframe, and an irregular interval (a "smart" codec stretching its GOP on a still
scene) stops the skipping until three regular keyframes have come again. Only IDR
keyframes count: an open GOP's keyframe (H.264 recovery point, HEVC CRA) lets frames
after it refer to frames before it.
"""

from __future__ import annotations

from collections import deque

__all__ = ["GopTailSkipper", "is_idr_packet", "nal_length_size"]

_H264_IDR = 5
_HEVC_IDR = (19, 20)  # IDR_W_RADL, IDR_N_LP
_KEYFRAMES_FOR_A_PREDICTION = 3


def nal_length_size(codec_name: str, extradata: bytes | None) -> int | None:
    """Bytes of each NAL unit's length prefix in packets of this stream; None for Annex B (start codes).

    MP4 and Matroska store H.264/H.265 length-prefixed (an ``avcC``/``hvcC`` record in the
    extradata, its first byte 1); RTSP and MPEG-TS carry Annex B start codes.
    """
    if not extradata or extradata[0] != 1:
        return None
    if codec_name == "h264" and len(extradata) > 4:
        return (extradata[4] & 0x03) + 1
    if codec_name == "hevc" and len(extradata) > 21:
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


def is_idr_packet(data: bytes, codec_name: str, length_size: int | None) -> bool:
    """Whether a packet holds an IDR picture: a keyframe that closes its GOP (nothing after it refers before it).

    Args:
        data: The packet's bytes.
        codec_name: ``h264`` or ``hevc`` (any other codec: False).
        length_size: From ``nal_length_size``: length-prefixed NAL units, or None for start codes.
    """
    headers = _nal_headers(data, length_size)
    if codec_name == "h264":
        return any(header & 0x1F == _H264_IDR for header in headers)
    if codec_name == "hevc":
        return any((header >> 1) & 0x3F in _HEVC_IDR for header in headers)
    return False


class GopTailSkipper:
    """Decides, packet by packet, whether a non-key packet may go undecoded (see the module's docstring).

    Args:
        frame_period_s: The stream's frame period; half of it is the tolerance on keyframe times.
        codec_name: ``h264`` or ``hevc``: how its keyframe packets are read.
        length_size: The stream's NAL length prefix (``nal_length_size``), None for start codes.

    Attributes:
        skipped: Packets left undecoded so far.
    """

    def __init__(
        self, frame_period_s: float, *, codec_name: str = "h264", length_size: int | None = None
    ) -> None:
        self._tolerance_s = frame_period_s / 2
        self._codec_name = codec_name
        self._length_size = length_size
        self._keyframes: deque[float] = deque(maxlen=_KEYFRAMES_FOR_A_PREDICTION)
        self._is_skipping = False
        self.skipped = 0

    @property
    def next_keyframe_s(self) -> float | None:
        """When the next keyframe should come (stream seconds): the last three were evenly spaced; else None."""
        if len(self._keyframes) < _KEYFRAMES_FOR_A_PREDICTION:
            return None
        first, second, last = self._keyframes
        interval = last - second
        if abs(interval - (second - first)) > self._tolerance_s:
            return None
        return last + interval

    def keyframe(self, pts_s: float | None, *, is_idr: bool) -> None:
        """A keyframe packet came (it is decoded): the skipping ends; an IDR one counts towards the next prediction.

        One that is late, not an IDR, unstamped or earlier than the last (a loop, a camera's
        clock reset) starts the count of regular keyframes again.
        """
        self._is_skipping = False
        predicted = self.next_keyframe_s
        is_late = predicted is not None and pts_s is not None and pts_s > predicted + self._tolerance_s
        if pts_s is None or not is_idr or is_late or (self._keyframes and pts_s <= self._keyframes[-1]):
            self._keyframes.clear()
        if pts_s is not None and is_idr:
            self._keyframes.append(pts_s)

    def keyframe_packet(self, pts_s: float | None, data: bytes) -> None:
        """A keyframe packet came: ``keyframe`` with whether its bytes hold an IDR picture."""
        self.keyframe(pts_s, is_idr=is_idr_packet(data, self._codec_name, self._length_size))

    def should_skip(self, next_due_s: float | None) -> bool:
        """For a packet that is not a keyframe: True to leave it undecoded.

        Args:
            next_due_s: When the sampler's next frame is due (stream seconds), None before the first.
        """
        if not self._is_skipping:
            predicted = self.next_keyframe_s
            # Every frame before the predicted keyframe is earlier than the next sample, which
            # the keyframe (or a later frame) will serve: none of them is needed any more.
            if predicted is None or next_due_s is None or next_due_s < predicted - self._tolerance_s:
                return False
            self._is_skipping = True
        self.skipped += 1
        return True
