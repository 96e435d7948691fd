"""The code's shape, kept by a tool (.ci/rules runs it): in morphlake/, ingest/ and embed/, every function reads in one
screen (at most 60 lines) and takes at most three positional parameters (the rest keyword-only); every dataclass is
frozen and takes at most three fields positionally. The exceptions are listed below, each with its reason.

    python3 .ci/shape.py      # exit 1 with each breach named; 0 when there is none
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOTS = ("morphlake", "ingest", "embed")
MAX_LINES = 60
MAX_POSITIONAL = 3
# function -> why it may take more positional parameters
POSITIONAL_EXCEPTIONS = {
    "morphlake/steps/embed/ray_engine.py::decode_check_task": "a Ray remote task: Ray passes its arguments by position",
}
# dataclass -> why it is not frozen: objects filled in as a run goes, not records
MUTABLE = {
    "embed/reader.py::DecodedBatch": "its reader threads fill the batch's rows in place",
    "embed/gpu_decode.py::PreparedBatch": "a DecodedBatch, filled the same way",
    "morphlake/steps/build/plan.py::BuildPlan": "make_plan decides it experiment by experiment",
    "morphlake/steps/lifecycle.py::LakeRun": "a run's open state: what it skipped, its failures, its result",
}


def positional(args: ast.arguments) -> int:
    return len([a for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")])


def dataclass_breaches(node: ast.ClassDef, where: str) -> list[str]:
    """A dataclass not frozen (and not listed as mutable), or taking more than three fields positionally."""
    decorator = next((d for d in node.decorator_list if ast.unparse(d).startswith("dataclass")), None)
    if decorator is None:
        return []
    options = {k.arg: ast.unparse(k.value) for k in decorator.keywords} if isinstance(decorator, ast.Call) else {}
    breaches = []
    if options.get("frozen") != "True" and where not in MUTABLE:
        breaches.append(f"{where}: a dataclass, not frozen (frozen=True, or list it in MUTABLE with the reason)")
    if options.get("kw_only") != "True":
        fields = []
        for item in node.body:
            if isinstance(item, ast.AnnAssign):
                if "KW_ONLY" in ast.unparse(item.annotation):
                    break
                fields.append(item)
        if len(fields) > MAX_POSITIONAL:
            breaches.append(f"{where}: {len(fields)} fields taken by position (add `_: KW_ONLY` after the third)")
    return breaches


def breaches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.as_posix()}::{getattr(node, 'name', '')}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_LINES:
                found.append(f"{where}: {lines} lines (at most {MAX_LINES}: split it into named steps)")
            if positional(node.args) > MAX_POSITIONAL and where not in POSITIONAL_EXCEPTIONS:
                found.append(f"{where}: {positional(node.args)} positional parameters (make the rest keyword-only)")
        elif isinstance(node, ast.ClassDef):
            found += dataclass_breaches(node, where)
    return found


def main() -> int:
    found = [b for root in ROOTS for path in sorted(Path(root).rglob("*.py")) for b in breaches(path)]
    for breach in found:
        print(breach, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
