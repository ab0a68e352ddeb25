"""The code's shape as the README states it: the layout table matches setup.py's mapping, and no
function grows past 60 lines without saying why in its docstring."""

import ast
import re

from packaging_helpers import INSTALLED_AS, REPO

LONGEST = 60


def test_the_readmes_layout_table_names_each_folder_as_it_is_installed():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    rows = dict(re.findall(r"^\| `([a-z_/]+)/` \| `([a-z_.]+)`", layout, re.M))
    for folder, package in INSTALLED_AS.items():
        assert rows.get(folder) == package, f"README's layout table: {folder}/ should say {package}"
    setup = (REPO / "setup.py").read_text()
    for folder, package in INSTALLED_AS.items():
        assert f'"{package}": "{folder}"' in setup, f"setup.py maps {package} elsewhere"


def test_no_function_is_longer_than_60_lines_without_a_reason():
    long = []
    for folder in INSTALLED_AS:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > LONGEST and f"{LONGEST} lines" not in (ast.get_docstring(node) or ""):
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "split these, or say in the docstring why they are longer than 60 lines: " + ", ".join(long)
