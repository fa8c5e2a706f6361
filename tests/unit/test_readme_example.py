"""The README's library example runs as written (issue 16: no undefined names, the package importable)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _library_example() -> str:
    text = README.read_text()
    section = text[text.index("## The library"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_library_example_runs(capsys):
    ns: dict = {}
    exec(compile(_library_example(), "README.md", "exec"), ns)
    assert ns["spikes"][:, 0, 0].tolist() == [0.0, 0.0, 1.0]                 # the comment's arithmetic holds
    assert ns["outcomes"].n == 16 and ns["outcomes"].draws == 3
    assert float((ns["x_adv"] - ns["x"]).abs().max()) <= 8 / 255 + 1e-6     # the budget is respected
    assert "adversarial accuracy" in capsys.readouterr().out
