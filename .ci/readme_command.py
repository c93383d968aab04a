"""Print README's Nth fenced bash command (1: install and run the main job, 2: the tests).

.ci/run runs what this prints, so CI runs README's commands exactly as a newcomer types them;
tests/test_readme_commands.py checks the two stay alike (one venv step, one pip line).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(r"^```bash\n(.*?)\n```$", re.S | re.M)


def readme_commands(readme: Path) -> list[str]:
    """The first two fenced bash blocks of README: one command line each."""
    blocks = [b.strip() for b in BLOCK.findall(readme.read_text(encoding="utf-8"))][:2]
    for block in blocks:
        if "\n" in block:
            raise SystemExit(f"{readme}: README's opening commands must be one line each: {block!r}")
    return blocks


if __name__ == "__main__":
    index = int(sys.argv[1])
    print(readme_commands(Path(__file__).resolve().parent.parent / "README.md")[index - 1])
