"""Sphinx directives that generate reference tables from eqflow's own sources at build time.

- ``eqflow-schema KIND``: a system's parameter, attribute, variable, constant, observable and
  operator tables, read from ``schemas/KIND.json`` (the file ``eq.validate`` checks against), so
  the docs and the schema cannot disagree.
- ``eqflow-cli``: every ``eqflow`` sub-command with its arguments, read from the argparse parser
  that ``eqflow.cli.main`` builds.
- ``eqflow-run-keys``: the keys a run file's ``[run]`` table takes (``eqflow.cli.RUN_KEYS``).

Each builds docutils nodes directly, so the directives work the same in reStructuredText and in
MyST Markdown pages.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _cell(text) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(text, nodes.Node):
        entry += text
    else:
        entry += nodes.paragraph(text="" if text is None else str(text))
    return entry


def _literal(text: str) -> nodes.paragraph:
    return nodes.paragraph("", "", nodes.literal(text=text))


def table(header: list[str], rows: list[list], title: str | None = None) -> nodes.table:
    """A docutils table of strings (or nodes); the first column is set as code."""
    tbl = nodes.table(classes=["eqflow-generated"])
    if title:
        tbl += nodes.title(text=title)
    group = nodes.tgroup(cols=len(header))
    tbl += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for name in header:
        row += _cell(name)
    head += row
    body = nodes.tbody()
    group += body
    for values in rows:
        row = nodes.row()
        for i, value in enumerate(values):
            row += _cell(_literal(value) if i == 0 else value)
        body += row
    return tbl


def _bounds(spec: dict) -> str:
    parts = []
    for key, op in (("minimum", ">="), ("exclusive_minimum", ">"), ("maximum", "<="), ("exclusive_maximum", "<")):
        if key in spec:
            parts.append(f"{op} {spec[key]}")
    if "multiple_of" in spec:
        parts.append(f"multiple of {spec['multiple_of']}")
    if "allowed_values" in spec:
        parts.append("one of " + ", ".join(map(str, spec["allowed_values"])))
    return ", ".join(parts)


def _units(spec: dict) -> str:
    units = spec.get("units", "")
    also = spec.get("also_accepts")
    if also:
        units += " (also " + ", ".join(also) + ")"
    return units


def _dims(spec: dict) -> str:
    dims = spec.get("dims")
    return "()" if dims == [] else "(" + ", ".join(dims) + ")" if dims else ""


def _default(spec: dict) -> str:
    if spec.get("required"):
        return "required"
    return "" if "default" not in spec else repr(spec["default"]) if spec["default"] is not None else "None"


def _allowed(spec: dict) -> str:
    """An attribute's allowed values, or its free form (``"format": "json"``: a JSON document)."""
    if "allowed_values" in spec:
        return ", ".join(spec["allowed_values"])
    return f"any {spec['format'].upper()} text" if "format" in spec else "any text"


def schema_tables(kind: str) -> list[nodes.Node]:
    path = SCHEMAS / f"{kind}.json"
    doc = json.loads(path.read_text())
    out: list[nodes.Node] = [nodes.paragraph(text=f"Generated from schemas/{kind}.json: {doc['description']}")]
    if doc.get("site_dims"):
        out.append(table(["site dim", "allowed sizes", "description"],
                         [[n, _bounds(s), s.get("description", "")] for n, s in doc["site_dims"].items()],
                         "Site dimensions"))
    if doc.get("attributes"):
        out.append(table(["attribute", "allowed values", "default", "description"],
                         [[n, _allowed(s), s.get("default", ""), s.get("description", "")]
                          for n, s in doc["attributes"].items()], "Attributes (strings)"))
    out.append(table(["parameter", "units", "default", "allowed values", "sweepable", "description"],
                     [[n, _units(s), _default(s), _bounds(s), "yes" if s.get("sweepable") else "no",
                       s.get("description", "")] for n, s in doc["parameters"].items()],
                     "Parameters (coordinates; a sweepable one given as a sequence becomes a dimension)"))
    if doc.get("constants"):
        out.append(table(["constant", "dims", "units", "dtype", "required", "description"],
                         [[n, _dims(s), s.get("units", ""), s.get("dtype", "float64"),
                           "yes" if s.get("required") else "no", s.get("description", "")]
                          for n, s in doc["constants"].items()], "Constants"))
    out.append(table(["variable", "dims", "dtype", "units", "allowed values", "description"],
                     [[n, _dims(s), _dtypes(s), s.get("units", ""), _bounds(s), s.get("description", "")]
                      for n, s in doc["variables"].items()], "State variables"))
    out.append(table(["observable", "dims", "dtype", "units", "description"],
                     [[n, _dims(s), _dtypes(s), s.get("units", ""), s.get("description", "")]
                      for n, s in doc["observables"].items()], "Observables"))
    out.append(table(["operator", "description", "options", "owned state", "diagnostics"],
                     [[n, _with_reference(s), _names(s.get("options"), default=True), _names(s.get("state")),
                       _names(s.get("diagnostics"))] for n, s in doc["operators"].items()], "Operators"))
    if doc.get("backends"):
        out.append(nodes.paragraph(text="Backends: " + ", ".join(doc["backends"]) + "."))
    if doc.get("reference"):
        refs = doc["reference"] if isinstance(doc["reference"], list) else [doc["reference"]]
        out.append(nodes.paragraph(text="Reference: " + "; ".join(refs) + "."))
    return out


def _dtypes(spec: dict) -> str:
    dtype = spec.get("dtype", "")
    return ", ".join(dtype) if isinstance(dtype, list) else dtype


def _with_reference(spec: dict) -> str:
    text = spec.get("description", "")
    return f"{text} ({spec['reference']})" if spec.get("reference") else text


def _names(specs: dict | None, default: bool = False) -> str:
    if not specs:
        return ""
    if default:
        return "; ".join(f"{n} (default {s['default']!r})" if "default" in s else n for n, s in specs.items())
    return ", ".join(specs)


class SchemaDirective(Directive):
    """``.. eqflow-schema:: KIND``"""

    required_arguments = 1

    def run(self):
        kind = self.arguments[0]
        env = self.state.document.settings.env
        env.note_dependency(str(SCHEMAS / f"{kind}.json"))
        return schema_tables(kind)


class _Parser(Exception):
    def __init__(self, parser):
        self.parser = parser


def cli_parser() -> argparse.ArgumentParser:
    """The parser ``eqflow.cli.main`` builds (caught at its ``parse_args``, so the docs follow the code)."""
    from eqflow import cli

    if hasattr(cli, "build_parser"):
        return cli.build_parser()
    original = argparse.ArgumentParser.parse_args

    def catch(self, *args, **kwargs):
        raise _Parser(self)

    argparse.ArgumentParser.parse_args = catch
    try:
        with contextlib.suppress(SystemExit):
            cli.main([])
    except _Parser as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original
    raise RuntimeError("eqflow.cli.main built no parser")


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse has no public walk over sub-commands
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _arguments(parser: argparse.ArgumentParser) -> list[list[str]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(action.option_strings) or action.dest.upper()
        if action.option_strings and action.nargs != 0:
            name += " " + (action.metavar or action.dest.upper())
        default = "" if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings \
            else str(action.default)
        rows.append([name, action.help or "", default])
    return rows


class CliDirective(Directive):
    """``.. eqflow-cli::``"""

    def run(self):
        parser = cli_parser()
        out: list[nodes.Node] = [table(["option", "meaning", "default"], _arguments(parser), "eqflow")]
        for name, help_, sub in _subparsers(parser):
            section = nodes.rubric(text=f"eqflow {name}")
            usage = nodes.literal_block(text=sub.format_usage().strip())
            out += [section, nodes.paragraph(text=help_ or ""), usage,
                    table(["argument", "meaning", "default"], _arguments(sub))]
        return out


class RunKeysDirective(Directive):
    """``.. eqflow-run-keys::``: the ``[run]`` keys of a run file, as ``eqflow.cli`` accepts them."""

    def run(self):
        from eqflow import cli

        keys = sorted(cli.RUN_KEYS)
        para = nodes.paragraph(text="[run] takes: ")
        for i, key in enumerate(keys):
            para += nodes.literal(text=key)
            para += nodes.Text(", " if i < len(keys) - 1 else ".")
        return [para]


# eqflow's docstrings write formulas as plain text (a*b, |z|^2, sum_i, x_): inside reStructuredText
# those characters start emphasis, substitutions and references. Escape them outside literals,
# roles, doctests, literal blocks and directives, before napoleon reads the sections.
_PROTECTED = re.compile(r"(``.+?``|(?::[\w:+-]+:)?`[^`]+`_{0,2}|https?://\S+)")
_SPECIAL = re.compile(r"(?<!\\)([*|])|(?<=\w)(?<!\\)_(?=[^\w]|$)")


def _escape_text(text: str) -> str:
    parts = _PROTECTED.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _SPECIAL.sub(lambda m: "\\" + m.group(0), parts[i])
    return "".join(parts)


def escape_docstring(lines: list[str]) -> list[str]:
    out, literal_indent, in_doctest = [], None, False
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                out.append(line)
                continue
        if in_doctest:
            if stripped:
                out.append(line)
                continue
            in_doctest = False
        if stripped.startswith(">>>"):
            in_doctest = True
            out.append(line)
            continue
        if stripped.startswith(".. "):
            literal_indent = indent
            out.append(line)
            continue
        out.append(_escape_text(line))
        if stripped.endswith("::"):
            literal_indent = indent
    return out


_PARAMETER = re.compile(r"^\s*[\w*\\][\w*\\, ]* : ")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def structure_docstring(lines: list[str]) -> list[str]:
    """Plain-text layouts as reStructuredText: an indented block after a blank line (a formula, a
    command) is preformatted, and a ``name : text`` line after an indented continuation starts a
    new item."""
    out: list[str] = []
    for line in lines:
        if line.strip():
            previous = next((i for i in range(len(out) - 1, -1, -1) if out[i].strip()), None)
            blank_before = bool(out) and not out[-1].strip()
            if previous is not None and _indent(line) > _indent(out[previous]):
                head = out[previous].rstrip()
                starts = not head.endswith("::") and not head.lstrip().startswith((">>>", "...", ".. "))
                if blank_before and starts and not _in_literal(out, previous):
                    out[previous] = head + " ::"
            elif previous is not None and not blank_before and _PARAMETER.match(line) \
                    and (_indent(out[previous]) > _indent(line) or _PARAMETER.match(out[previous])):
                out.append("")
        out.append(line)
    return out


def _in_literal(out: list[str], index: int) -> bool:
    """Whether line ``index`` is itself inside a preformatted block or a directive."""
    indent = _indent(out[index])
    for i in range(index - 1, -1, -1):
        if out[i].strip() and _indent(out[i]) < indent:
            head = out[i].rstrip()
            return head.endswith("::") or head.lstrip().startswith(".. ")
    return False


_SECTIONS = ("Parameters", "Other Parameters", "Attributes", "Keyword Arguments")
_TYPE = re.compile(r"^[\w.\[\](), |*\\-]{1,40}$")


def parameter_sections(lines: list[str]) -> list[str]:
    """eqflow writes ``name : what it is, in words`` on one line: keep a short type as the type,
    move prose into the description (napoleon would file it as the type); and a paragraph that
    follows a parameter list (``Returns ...``) goes before the section instead of being read as
    one more parameter."""
    out: list[str] = []
    i, header_at = 0, None
    while i < len(lines):
        line = lines[i]
        is_header = i + 1 < len(lines) and line.strip() in _SECTIONS and set(lines[i + 1].strip()) == {"-"}
        if is_header:
            header_at = len(out)
            out += [line, lines[i + 1]]
            i += 2
            continue
        if header_at is not None and line.strip() and _indent(line) == 0:
            match = _PARAMETER.match(line)
            after_blank = bool(out) and not out[-1].strip()
            if match is None and after_blank and not (i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}):
                paragraph = []
                while i < len(lines) and lines[i].strip():
                    paragraph.append(lines[i])
                    i += 1
                out[header_at:header_at] = [*paragraph, ""]
                header_at += len(paragraph) + 1
                continue
            if match is not None:
                name, rest = line.split(" : ", 1)
                if not _TYPE.match(rest.strip()) or len(rest.split()) > 4:
                    out += [name, "    " + rest]
                    i += 1
                    continue
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            header_at = None
        out.append(line)
        i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines):
    lines[:] = escape_docstring(parameter_sections(structure_docstring(lines)))


def setup(app):
    directives.register_directive("eqflow-schema", SchemaDirective)
    directives.register_directive("eqflow-cli", CliDirective)
    directives.register_directive("eqflow-run-keys", RunKeysDirective)
    app.connect("autodoc-process-docstring", _process_docstring, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
