#!/usr/bin/env python3
"""Draws Hearth's icons: the app icon and one tray icon per provider state.

Pure standard library (zlib + struct), so anyone can regenerate them with plain `python3
icons/generate.py`; the output is deterministic and committed.

Tray icons come in two flavours:
  * `tray-<state>.png`: macOS template images (black + alpha only; the menu bar tints them). The
    state is carried by the shape, since a template has no colour.
  * `tray-<state>-color.png`: the same shapes in a state colour, for Linux/Windows tray hosts
    that show icons as they are (a black icon vanishes on a dark panel).
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SS = 4  # supersampling per axis, for anti-aliased edges


def png(path, w, h, rgba):
    raw = b"".join(b"\x00" + bytes(rgba[y * w * 4:(y + 1) * w * 4]) for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9))
    data += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def flame(x, y, cx=0.5, cy=0.54, size=0.40):
    """True inside a teardrop flame (tip up) centred at (cx, cy), in unit coordinates."""
    # Map to v in [-1, 1] (1 = tip) and u = horizontal offset, both scaled by size.
    v = (cy - y) / size
    u = (x - cx) / size
    if v > 1.0 or v < -1.0:
        return False
    t = math.acos(max(-1.0, min(1.0, v)))
    # A slight lean to the right near the tip reads as a flicker rather than a raindrop.
    lean = 0.18 * max(0.0, v) ** 2
    half = math.sin(t) * math.sin(t / 2) ** 1.3 * 0.92
    return abs(u - lean) <= half


def render(size, inside, colour_at):
    """Rasterises an inside(x, y) -> bool | (r,g,b) predicate to RGBA with supersampling."""
    out = bytearray(size * size * 4)
    for py in range(size):
        for px in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SS):
                for sx in range(SS):
                    x = (px + (sx + 0.5) / SS) / size
                    y = (py + (sy + 0.5) / SS) / size
                    c = inside(x, y)
                    if c:
                        r, g, b = colour_at(c)
                        acc[0] += r
                        acc[1] += g
                        acc[2] += b
                        acc[3] += 1
            n = acc[3]
            if n:
                i = (py * size + px) * 4
                out[i:i + 4] = bytes([round(acc[0] / n), round(acc[1] / n), round(acc[2] / n), round(255 * n / SS / SS)])
    return out


def outline(x, y):
    return flame(x, y) and not flame(x, y, size=0.40 - 0.105, cy=0.54 + 0.02)


def tray_shape(state):
    """The state's glyph: a predicate returning True (ink) or False."""
    if state == "stopped":
        return outline
    if state == "connecting":
        # Outline with the lower half lit: on its way.
        return lambda x, y: outline(x, y) or (flame(x, y) and y > 0.66)
    if state == "ready":
        return flame
    if state == "busy":
        # Filled, with two sparks rising beside the tip.
        def busy(x, y):
            spark = lambda cx, cy, r: (x - cx) ** 2 + (y - cy) ** 2 <= r * r
            return flame(x, y, cx=0.44) or spark(0.80, 0.22, 0.065) or spark(0.88, 0.42, 0.05)
        return busy
    if state == "paused":
        # Outline with two pause bars inside (also used for degraded / draining).
        def paused(x, y):
            bars = 0.58 <= y <= 0.78 and (0.405 <= x <= 0.47 or 0.53 <= x <= 0.595)
            return outline(x, y) or bars
        return paused
    if state == "error":
        # Outline struck through.
        def error(x, y):
            d = abs((x - 0.5) + (y - 0.5)) / math.sqrt(2)
            on_line = d < 0.05 and 0.16 < x < 0.84
            gap = abs((x - 0.5) + (y - 0.5)) / math.sqrt(2) < 0.085
            return on_line or (outline(x, y) and not gap)
        return error
    raise ValueError(state)


STATE_COLOURS = {
    "stopped": (138, 132, 126),
    "connecting": (214, 158, 30),
    "ready": (52, 168, 96),
    "busy": (232, 114, 42),
    "paused": (214, 158, 30),
    "error": (214, 69, 59),
}


def app_icon(size):
    """Rounded dark square, an orange flame with a golden core."""
    radius = 0.22

    def inside(x, y):
        # Rounded-rectangle background with a margin, as macOS icons have.
        m = 0.06
        qx = max(abs(x - 0.5) - (0.5 - m - radius), 0)
        qy = max(abs(y - 0.5) - (0.5 - m - radius), 0)
        if qx * qx + qy * qy > radius * radius:
            return False
        if flame(x, y, cx=0.5, cy=0.58, size=0.20):
            return "core"
        if flame(x, y, cx=0.49, cy=0.52, size=0.33):
            return "flame"
        return "bg"

    colours = {"bg": (38, 33, 31), "flame": (236, 112, 40), "core": (252, 198, 74)}
    return render(size, inside, lambda c: colours[c])


def main():
    for state in STATE_COLOURS:
        shape = tray_shape(state)
        for px, suffix in ((22, ""), (44, "@2x")):
            png(os.path.join(HERE, f"tray-{state}{suffix}.png"), px, px, render(px, shape, lambda _c: (0, 0, 0)))
        colour = STATE_COLOURS[state]
        png(os.path.join(HERE, f"tray-{state}-color.png"), 44, 44, render(44, shape, lambda _c, c=colour: c))
    for name, px in (("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)):
        png(os.path.join(HERE, name), px, px, app_icon(px))
    ui_public = os.path.join(HERE, "..", "ui", "public")
    os.makedirs(ui_public, exist_ok=True)
    png(os.path.join(ui_public, "favicon.png"), 32, 32, app_icon(32))


if __name__ == "__main__":
    main()
