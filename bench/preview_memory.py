"""Peak RSS of one inline preview of a big result image, each in a fresh process (issue 16, finding 5).

    .venv/bin/python bench/preview_memory.py                 # this checkout
    .venv/bin/python bench/preview_memory.py /other/server   # another checkout's server/ folder (e.g. "before")

Not part of bench/run.py: it writes ~2 MB of PNGs and briefly needs up to ~800 MB (the old code's peak).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

# The preview of one image in a fresh interpreter: peak RSS (VmHWM, which exec resets; ru_maxrss keeps the parent's
# peak across fork and exec) after the imports, and after the preview, in MB. Linux only.
CHILD = """
import sys, time
from PIL import Image
from evolink_mcp.images.previews import _encode_preview
def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
before = peak_kb()
started = time.perf_counter()
try:
    made = "preview" if _encode_preview(sys.argv[1], 200_000) else "none"
except Exception as exc:
    made = f"refused ({str(exc)[:60]})"
after = peak_kb()
print(f"{before / 1024:.0f}\\t{after / 1024:.0f}\\t{time.perf_counter() - started:.2f}\\t{made}")
"""

IMAGES = {"13000x13000 RGB PNG": (13000, 13000), "7000x7000 RGB PNG (49 MP)": (7000, 7000)}


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "server")
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        print("image\tRSS after imports (MB)\tpeak RSS (MB)\tseconds\tpreview")
        for name, size in IMAGES.items():
            path = Path(folder) / f"{size[0]}.png"
            Image.new("RGB", size, (90, 140, 200)).save(path)  # one colour: a small file, a full-size decode
            answer = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                env={"PYTHONPATH": server, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{name}\t{answer.stdout.strip()}")


if __name__ == "__main__":
    main()
