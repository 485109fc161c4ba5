#!/usr/bin/env python3
"""Draw SchoolVault's icons (RGBA PNG, no dependencies): the app icon and the tray's idle,
running and failed variants. Run once; the PNGs are committed in icons/."""
import math, struct, zlib, os

def png(path, size, pixel):
    rows = b""
    for y in range(size):
        rows += b"\x00" + b"".join(bytes(pixel(x + 0.5, y + 0.5, size)) for x in range(size))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)

def cover(d):  # anti-aliased coverage of a signed distance
    return max(0.0, min(1.0, 0.5 - d))

def vault(color, mark):
    def pixel(x, y, s):
        u, v = x / s * 2 - 1, y / s * 2 - 1          # -1..1
        # rounded square body
        qx, qy = abs(u) - 0.62, abs(v) - 0.62
        r = math.hypot(max(qx, 0), max(qy, 0)) + min(max(qx, qy), 0) - 0.3
        body = cover(r * s / 2)
        a = body
        col = color
        ring = abs(math.hypot(u, v) - 0.42) - 0.09
        inner = cover(ring * s / 2)
        if mark == "keyhole":
            hole = min(math.hypot(u, v + 0.08) - 0.16, max(abs(u) - 0.07, abs(v - 0.2) - 0.2))
            white = max(inner, cover(hole * s / 2))
        elif mark == "bang":
            bar = max(abs(u) - 0.09, abs(v + 0.12) - 0.3)
            dot = math.hypot(u, v - 0.42) - 0.1
            white = max(cover(bar * s / 2), cover(dot * s / 2))
        else:  # running: ring with a gap and a dot
            ang = math.atan2(v, u)
            arc = inner if not (-0.6 < ang < 0.2) else 0.0
            white = max(arc, cover((math.hypot(u, v) - 0.12) * s / 2))
        rgb = [round(c * (1 - white) + 255 * white) for c in col]
        return rgb + [round(255 * a)]
    return pixel

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "icons")
blue, slate, red, green = (37, 99, 235), (51, 65, 85), (220, 38, 38), (22, 163, 74)
for size in (32, 128, 256):
    png(os.path.join(here, f"{size}x{size}.png" if size != 256 else "icon.png"), size, vault(blue, "keyhole"))
png(os.path.join(here, "tray-idle.png"), 32, vault(slate, "keyhole"))
png(os.path.join(here, "tray-running.png"), 32, vault(blue, "running"))
png(os.path.join(here, "tray-failed.png"), 32, vault(red, "bang"))
