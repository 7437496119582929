"""The README's teaching table points at real code: every `dcgan_<fw>/<file>.py`
followed by a quoted snippet must name a line that is in that file."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"`(dcgan_\w+/\w+\.py)` `([^`]+)`")


def test_every_cited_line_exists():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Framework differences, for teaching"):readme.index("## Training")]
    citations = CITATION.findall(table)
    assert len(citations) >= 25
    missing = [(path, snippet) for path, snippet in citations if snippet not in (REPO / path).read_text()]
    assert not missing, missing


def test_readme_opens_with_the_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1:lines.index("```sh") + 3]
    assert block[0].startswith("make demo") and block[1].startswith("make test")
