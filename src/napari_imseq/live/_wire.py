"""The live wire format: a fixed 64-byte header per message, then the payload.

Everything here is pure bytes <-> numbers: no sockets, no threads. docs/live.md is the spec;
this module is its reference implementation. Headers are validated completely (magic, version,
header checksum, dtype whitelist, shape and payload limits) before anything is allocated for
the payload, and a payload is checked (CRC-32) before it is decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .. import SequenceError, SequenceFormatError

VERSION = 1
HEADER = struct.Struct("<4sBBHQddBBBB3IQII")
HEADER_SIZE = HEADER.size  # 64
MAGIC = b"IMSQ"

try:  # libdeflate's CRC-32 (same values as zlib's, ~50x faster on large payloads)
    from imagecodecs import deflate_crc32 as crc32
except ImportError:  # pragma: no cover - an imagecodecs built without libdeflate
    crc32 = zlib.crc32

#: message kinds
FRAME, HEARTBEAT, END = 0, 1, 2
#: high bit of the kind byte: the payload CRC-32 field is filled in and must be checked
KIND_CHECKSUM = 0x80

#: dtype codes on the wire (always little-endian); nothing else is accepted
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    3: np.dtype("<u4"),
    4: np.dtype("<i1"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<f4"),
    8: np.dtype("<f8"),
    9: np.dtype("?"),
}
_DTYPE_CODES = {dt.newbyteorder("<") if dt.itemsize > 1 else dt: c for c, dt in DTYPES.items()}

#: codec codes on the wire
CODECS = {"raw": 0, "lossless": 1, "jpeg": 2}
CODEC_NAMES = {v: k for k, v in CODECS.items()}

#: default limits (a receiver can lower or raise them)
MAX_FRAME_BYTES = 256 * 2**20
MAX_SIDE = 65535
MAX_CHANNELS = 4
#: payload bound of a compressed frame beyond its decoded size (codec headers, incompressible data)
_SLACK = 65536

# handshake (see docs/live.md): HELLO from the sender, AUTH from the receiver, RESULT back
HELLO = struct.Struct("<4sBBH32sd")  # magic, version, flags, reserved, nonce, fps
AUTH = struct.Struct("<4sBBH32s32s")  # magic, version, flags, reserved, mac, client nonce
RESULT = struct.Struct("<4sBBH32s")  # magic, version, status, reserved, mac
HELLO_MAGIC, AUTH_MAGIC, RESULT_MAGIC = b"IMSH", b"IMSA", b"IMSO"
FLAG_TOKEN = 1
_CLIENT_PROOF, _SERVER_PROOF = b"imseq-live-1 receiver", b"imseq-live-1 sender"


class LiveError(SequenceError):
    """Base class of live streaming errors."""


class LiveProtocolError(LiveError, SequenceFormatError):
    """A message that breaks the wire format (the connection that sent it is closed)."""


class LiveAuthError(LiveError, PermissionError):
    """A token was missing or wrong, or a bind off loopback was asked for without a token."""


class LiveFrameError(LiveError, ValueError):
    """A frame the stream cannot carry (dtype, shape, size, codec)."""


@dataclass(frozen=True)
class Header:
    kind: int
    index: int
    timestamp: float
    sent: float
    dtype: np.dtype | None
    codec: str
    shape: tuple[int, ...]
    bit_depth: int
    payload_length: int
    payload_crc: int | None  # None: the sender did not checksum the payload

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize if self.dtype else 0


def wire_dtype(dtype: np.dtype) -> int | None:
    """The wire code of ``dtype`` (any byte order), or None when it cannot be sent."""
    dt = np.dtype(dtype)
    if dt.itemsize > 1:
        dt = dt.newbyteorder("<")
    return _DTYPE_CODES.get(dt)


def check_frame(frame: np.ndarray, codec: str, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
    """Raise :class:`LiveFrameError` unless ``frame`` can travel with ``codec``."""
    if codec not in CODECS:
        raise LiveFrameError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    if wire_dtype(frame.dtype) is None:
        names = ", ".join(str(d) for d in DTYPES.values())
        raise LiveFrameError(
            f"{frame.dtype} frames cannot be streamed; convert them to one of {names}"
        )
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and not 1 <= frame.shape[2] <= MAX_CHANNELS):
        raise LiveFrameError(
            f"a frame of shape {frame.shape} cannot be streamed; frames are (Y, X) or (Y, X, C) "
            f"with 1 to {MAX_CHANNELS} channels"
        )
    if not all(1 <= s <= MAX_SIDE for s in frame.shape[:2]):
        raise LiveFrameError(f"a frame of shape {frame.shape}: each side must be 1..{MAX_SIDE}")
    if frame.nbytes > max_frame_bytes:
        raise LiveFrameError(
            f"a frame of {frame.nbytes} bytes is larger than max_frame_bytes={max_frame_bytes}; "
            f"raise max_frame_bytes on the sender and the receivers, or send smaller frames"
        )
    if codec == "jpeg" and (
        frame.dtype != np.uint8 or (frame.ndim == 3 and frame.shape[2] not in (1, 3))
    ):
        raise LiveFrameError(
            f"JPEG carries 8-bit gray or RGB frames only, not {frame.dtype} of shape "
            f"{frame.shape}; use codec='lossless' (exact, any dtype) or 'raw'"
        )


def encode_payload(frame: np.ndarray, codec: str, *, quality: int = 90, level: int = 1) -> bytes:
    """The payload bytes of ``frame`` (C order, little-endian samples) for ``codec``."""
    import imagecodecs

    dt = frame.dtype.newbyteorder("<") if frame.dtype.itemsize > 1 else frame.dtype
    frame = np.ascontiguousarray(frame, dtype=dt)
    if codec == "raw":
        return frame.tobytes()
    if codec == "lossless":
        return imagecodecs.blosc2_encode(
            frame.tobytes(), level=level, compressor="zstd", shuffle=1,
            typesize=frame.dtype.itemsize, numthreads=1,
        )  # fmt: skip
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    return bytes(imagecodecs.jpeg8_encode(frame, level=quality))


def pack_header(
    kind: int,
    index: int = 0,
    timestamp: float = 0.0,
    sent: float = 0.0,
    dtype: np.dtype | None = None,
    codec: str = "raw",
    shape: tuple[int, ...] = (),
    bit_depth: int = 0,
    payload: bytes | memoryview = b"",
    checksum: bool = True,
) -> bytes:
    """A 64-byte header; with ``checksum`` the payload's CRC-32 is computed and flagged."""
    dims = (*shape, 0, 0, 0)[:3]
    code = wire_dtype(dtype) if dtype is not None else 0
    checksum = checksum and len(payload) > 0
    body = HEADER.pack(
        MAGIC, VERSION, kind | (KIND_CHECKSUM if checksum else 0), HEADER_SIZE, index,
        timestamp, sent, code, CODECS[codec], len(shape), bit_depth, *dims, len(payload),
        crc32(payload) if checksum else 0, 0,
    )  # fmt: skip
    return body[:-4] + struct.pack("<I", crc32(body[:-4]))


def parse_header(buf: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> Header:
    """Validate a 64-byte header; :class:`LiveProtocolError` names what is wrong."""
    if len(buf) != HEADER_SIZE:
        raise LiveProtocolError(f"truncated header: {len(buf)} of {HEADER_SIZE} bytes")
    (magic, version, kind, size, index, timestamp, sent, code, codec, ndim, bits,
     d0, d1, d2, length, pcrc, hcrc) = HEADER.unpack(buf)  # fmt: skip
    if magic != MAGIC:
        raise LiveProtocolError(f"bad magic {magic!r} (expected {MAGIC!r}): not an imseq stream")
    if version != VERSION:
        raise LiveProtocolError(
            f"wire format version {version}; this napari-imseq speaks version {VERSION}: use the "
            f"same napari-imseq version on both sides"
        )
    if crc32(buf[:-4]) != hcrc:
        raise LiveProtocolError("header checksum mismatch: the header is damaged")
    if size != HEADER_SIZE:
        raise LiveProtocolError(f"header size {size}, expected {HEADER_SIZE}")
    checked = bool(kind & KIND_CHECKSUM)
    kind &= ~KIND_CHECKSUM
    if not checked and pcrc:
        raise LiveProtocolError("a payload checksum without the flag that announces it")
    if kind in (HEARTBEAT, END):
        if length or code or ndim or checked:
            raise LiveProtocolError(f"a control message (kind {kind}) with a payload")
        return Header(kind, index, timestamp, sent, None, "raw", (), 0, 0, None)
    if kind != FRAME:
        raise LiveProtocolError(f"unknown message kind {kind}")
    dtype = DTYPES.get(code)
    if dtype is None:
        raise LiveProtocolError(f"unknown dtype code {code}")
    if codec not in CODEC_NAMES:
        raise LiveProtocolError(f"unknown codec code {codec}")
    if ndim not in (2, 3):
        raise LiveProtocolError(f"frames have 2 or 3 dimensions, not {ndim}")
    shape = (d0, d1, d2)[:ndim]
    if not all(1 <= s <= MAX_SIDE for s in shape[:2]) or (
        ndim == 3 and not 1 <= d2 <= MAX_CHANNELS
    ) or (ndim == 2 and d2 != 0):  # fmt: skip
        raise LiveProtocolError(f"impossible frame shape {(d0, d1, d2)[: max(ndim, 2)]}")
    if not np.isfinite(timestamp) or not np.isfinite(sent):
        raise LiveProtocolError("timestamp is not a finite number")
    if bits > dtype.itemsize * 8:
        raise LiveProtocolError(f"bit depth {bits} exceeds the {dtype} samples")
    header = Header(kind, index, timestamp, sent, dtype, CODEC_NAMES[codec], shape, bits, length,
                    pcrc if checked else None)  # fmt: skip
    nbytes = header.nbytes
    if nbytes > max_frame_bytes:
        raise LiveProtocolError(
            f"a frame of {nbytes} bytes ({shape} {dtype}) exceeds max_frame_bytes="
            f"{max_frame_bytes}; raise max_frame_bytes if the stream is trusted"
        )
    name = header.codec
    if name == "raw" and length != nbytes:
        raise LiveProtocolError(f"raw payload of {length} bytes for a frame of {nbytes} bytes")
    if name != "raw" and not 0 < length <= nbytes + _SLACK:
        raise LiveProtocolError(f"{name} payload of {length} bytes for a frame of {nbytes} bytes")
    if name == "jpeg" and (dtype != np.uint8 or (ndim == 3 and d2 not in (1, 3))):
        raise LiveProtocolError(f"JPEG frame of {dtype} with shape {shape}")
    return header


def decode_payload(header: Header, payload) -> np.ndarray:
    """The frame of a validated header and its payload (any buffer; CRC checked first when
    the sender computed one)."""
    if header.payload_crc is not None and crc32(payload) != header.payload_crc:
        raise LiveProtocolError(f"payload checksum mismatch in frame {header.index}")
    dtype, shape, codec = header.dtype, header.shape, header.codec
    if codec == "raw":
        return np.frombuffer(payload, dtype).reshape(shape)
    import imagecodecs

    nbytes = header.nbytes
    try:
        if codec == "lossless":
            # the Blosc2 chunk header says the decoded size: check it before decoding
            if len(payload) < 16 or struct.unpack_from("<i", payload, 4)[0] != nbytes:
                raise LiveProtocolError(
                    f"lossless payload of frame {header.index} does not decode to {nbytes} bytes"
                )
            out = np.empty(nbytes, np.uint8)
            imagecodecs.blosc2_decode(payload, out=out, numthreads=1)
            return np.frombuffer(out, dtype).reshape(shape)
        out = np.empty(shape[:2] if len(shape) == 2 or shape[2] == 1 else shape, np.uint8)
        imagecodecs.jpeg8_decode(payload, out=out)
        return out.reshape(shape)
    except LiveProtocolError:
        raise
    except Exception as err:  # a codec error on a damaged payload
        raise LiveProtocolError(
            f"{codec} payload of frame {header.index} does not decode: {err}"
        ) from err


# ---- handshake -----------------------------------------------------------------------------------
def nonce() -> bytes:
    return os.urandom(32)


def _mac(token: str | bytes | None, label: bytes, *parts: bytes) -> bytes:
    if not token:
        return bytes(32)
    key = token.encode() if isinstance(token, str) else bytes(token)
    return hmac.new(key, label + b"".join(parts), hashlib.sha256).digest()


def client_proof(token, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(token, _CLIENT_PROOF, server_nonce, client_nonce)


def server_proof(token, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(token, _SERVER_PROOF, client_nonce, server_nonce)


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
