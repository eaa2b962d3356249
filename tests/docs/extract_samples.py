#!/usr/bin/env python3
"""Compiles and runs every code sample of the documentation (the docs_samples test).

A sample is a fenced block whose info string names a file:

    ```c file=crm_quick.c            a C program: cc -std=c11, linked with libcdpcore, run
    ```cpp file=mw.cpp               a C++ program: c++ -std=c++20, linked with libcdpcore, run
    ```cpp file=core.cpp link=cdpcore_static
                                     built by CMake against the static library (it uses the
                                     C++ core, which needs abseil and simdjson), then run
    ```python file=quick.py          run with the binding on PYTHONPATH
    ```json file=touchpoints.ndjson  any other file: written next to the programs
    ```text output=crm_quick.c       the exact stdout that program must print

Blocks of one page with the same file= are concatenated in order, so a program can be
shown in steps with prose between them. Each page's files go to their own directory,
which is also where its programs run. In docs/*.md a c, cpp or python block without
file= is an error (every sample must be real), unless it says tested-by=TEST: the ctest
test that compiles it elsewhere (e.g. the install test's consumers). README.md is
scanned for file= blocks only.

    extract_samples.py --source-dir S --work-dir W --library libcdpcore.so [...]  run all
    extract_samples.py --source-dir S --configure DIR                             extract
The second form writes every sample under DIR (unchanged files are not touched, so
CMake does not rebuild them) and prints the link=cdpcore_static ones as
"TARGET=PATH" lines, for tests/docs/CMakeLists.txt to make build targets of.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

CODE_LANGUAGES = {"c", "cpp", "c++", "cxx", "python", "py", "python3"}
C_EXT, CXX_EXT, PY_EXT = {".c"}, {".cpp", ".cc", ".cxx"}, {".py"}
STATIC = "cdpcore_static"
TIMEOUT = 120  # seconds per compile or run; a sample is a few milliseconds of work


@dataclass
class Block:
    page: Path
    line: int    # 1-based line of the opening fence
    lang: str
    attrs: Dict[str, str]
    text: str


@dataclass
class Sample:
    page: Path
    key: str     # the page's path in the tree without its suffix: docs/config, README
    name: str
    line: int
    attrs: Dict[str, str] = field(default_factory=dict)
    text: str = ""
    output: Optional[str] = None  # expected stdout, from output= blocks

    @property
    def kind(self) -> str:
        ext = Path(self.name).suffix
        if ext in C_EXT:
            return "c"
        if ext in CXX_EXT:
            return "static" if self.attrs.get("link") == STATIC else "cxx"
        if ext in PY_EXT:
            return "python"
        return "data"

    def where(self) -> str:
        return f"{self.page.name}:{self.line} {self.name}"


FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def fenced_blocks(page: Path) -> List[Block]:
    """The fenced code blocks of a CommonMark page, with their info strings parsed."""
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        start, body = i + 1, []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) \
                    and not close.group(3).strip():
                break
            line = lines[i]
            # Content is de-indented by the fence's own indentation (CommonMark).
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            i += 1
        i += 1  # the closing fence (or the end of the page: the block runs to the end)
        words = shlex.split(info) if info else []
        lang = words[0].lower() if words and "=" not in words[0] else ""
        attrs = dict(w.split("=", 1) for w in words if "=" in w)
        blocks.append(Block(page, start, lang, attrs, "\n".join(body) + "\n"))
    return blocks


def collect(source_dir: Path) -> Dict[Path, Dict[str, Sample]]:
    """Every page's samples by file name, in order of first appearance. Raises
    ValueError listing every block that breaks the rules."""
    pages = sorted((source_dir / "docs").glob("*.md")) + [source_dir / "README.md"]
    result: Dict[Path, Dict[str, Sample]] = {}
    problems = []
    for page in pages:
        if not page.is_file():
            continue
        strict = page.parent.name == "docs"
        key = page.relative_to(source_dir).with_suffix("").as_posix()
        samples: Dict[str, Sample] = {}
        outputs = []
        for b in fenced_blocks(page):
            where = f"{page.relative_to(source_dir)}:{b.line}"
            if "output" in b.attrs:
                outputs.append(b)
            elif "file" in b.attrs:
                name = b.attrs["file"]
                if "/" in name or name.startswith("."):
                    problems.append(f"{where}: file={name} must be a plain file name")
                    continue
                s = samples.setdefault(name, Sample(page, key, name, b.line))
                s.attrs.update(b.attrs)
                s.text += b.text
            elif strict and b.lang in CODE_LANGUAGES and "tested-by" not in b.attrs:
                problems.append(f"{where}: a ```{b.lang} block without file=NAME: every code "
                                "sample must be compiled or run (or name its test: tested-by=TEST)")
        for b in outputs:
            s = samples.get(b.attrs["output"])
            if s is None or s.kind == "data":
                problems.append(f"{page.relative_to(source_dir)}:{b.line}: output={b.attrs['output']} "
                                "names no program of this page")
            else:
                s.output = (s.output or "") + b.text
        if samples:
            result[page] = samples
    if problems:
        raise ValueError("\n".join(problems))
    return result


def page_dir(root: Path, samples: Dict[str, Sample]) -> Path:
    """Where a page's files are written and its programs run: ROOT/docs/config/."""
    return root / next(iter(samples.values())).key


def target_name(s: Sample) -> str:
    return "docs_sample_" + re.sub(r"[^A-Za-z0-9_]", "_", f"{s.key}_{Path(s.name).stem}")


def write(path: Path, text: str) -> None:
    """Writes only when the content changed, so build systems see no new timestamp."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def configure(source_dir: Path, out: Path) -> int:
    for page, samples in collect(source_dir).items():
        for s in samples.values():
            write(page_dir(out, samples) / s.name, s.text)
            if s.kind == "static":
                print(f"{target_name(s)}={page_dir(out, samples) / s.name}")
    return 0


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.src = Path(args.source_dir).resolve()
        self.lib = Path(args.library).resolve()
        self.built = dict(b.split("=", 1) for b in args.built)
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if args.sanitize else []
        # The exact library file, found again at run time through the rpath.
        link = [str(self.lib), f"-Wl,-rpath,{self.lib.parent}"]
        self.cc = shlex.split(args.cc) + ["-std=c11", "-Wall", "-Wextra", "-Werror", *san,
                                          f"-I{self.src / 'capi'}"]
        self.cxx = shlex.split(args.cxx) + ["-std=c++20", "-Wall", "-Wextra", "-Werror", *san,
                                            f"-I{self.src / 'include'}", f"-I{self.src / 'capi'}"]
        self.link = link
        self.env = dict(os.environ, CDPCORE_LIBRARY=str(self.lib), PYTHONDONTWRITEBYTECODE="1",
                        PYTHONPATH=os.pathsep.join(
                            [str(self.src / "bindings" / "python")] +
                            ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        if args.sanitize:
            # python3 is not instrumented: the ASan runtime must be loaded before the library.
            asan = subprocess.run(shlex.split(args.cc) + ["-print-file-name=libasan.so"],
                                  capture_output=True, text=True).stdout.strip()
            self.env.update(LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0")
        self.failures: List[str] = []

    def step(self, s: Sample, what: str, cmd: List[str], cwd: Path) -> Optional[str]:
        """Runs one command; returns its stdout, or None after recording the failure."""
        try:
            p = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True,
                               timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.failures.append(f"{s.where()}: {what} timed out after {TIMEOUT}s")
            return None
        if p.returncode != 0:
            self.failures.append(f"{s.where()}: {what} failed (exit {p.returncode})\n"
                                 f"  $ {shlex.join(cmd)}\n{p.stdout}{p.stderr}")
            return None
        return p.stdout

    def build(self, s: Sample, d: Path) -> Optional[List[str]]:
        """Compiles a program; returns the command that runs it."""
        exe = d / Path(s.name).stem
        if s.kind == "python":
            return [self.args.python, s.name]
        if s.kind == "c":
            ok = self.step(s, "compile", self.cc + [s.name, "-o", str(exe)] + self.link, d)
        elif s.kind == "cxx":
            ok = self.step(s, "compile", self.cxx + [s.name, "-o", str(exe)] + self.link, d)
        else:
            target = target_name(s)
            if target not in self.built or not self.args.cmake:
                self.failures.append(f"{s.where()}: no CMake target {target}: re-run cmake "
                                     "(tests/docs/CMakeLists.txt makes one per link= sample)")
                return None
            ok = self.step(s, f"cmake --build --target {target}",
                           [self.args.cmake, "--build", str(Path(self.args.build_dir).resolve()),
                            "--target", target], d)
            exe = Path(self.built[target])
        return [str(exe)] if ok is not None else None

    def run_page(self, page: Path, samples: Dict[str, Sample]) -> None:
        d = page_dir(Path(self.args.work_dir).resolve(), samples)
        for s in samples.values():
            write(d / s.name, s.text)
        for s in samples.values():
            if s.kind == "data":
                continue
            t0 = time.monotonic()
            cmd = self.build(s, d)
            out = self.step(s, "run", cmd, d) if cmd else None
            if out is None:
                continue
            if s.output is not None and normalise(out) != normalise(s.output):
                self.failures.append(f"{s.where()}: its output differs from the page's "
                                     f"output={s.name} block.\n--- page\n{s.output}--- actual\n{out}")
                continue
            print(f"ok   {page.relative_to(self.src)}: {s.name} ({s.kind}"
                  f"{', output checked' if s.output is not None else ''}, "
                  f"{time.monotonic() - t0:.1f}s)")


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--configure", metavar="DIR", help="only extract the samples into DIR")
    ap.add_argument("--work-dir")
    ap.add_argument("--library", help="the shared libcdpcore to link and load")
    ap.add_argument("--built", action="append", default=[], metavar="TARGET=FILE",
                    help="a CMake-built link=cdpcore_static sample")
    ap.add_argument("--cmake", help="cmake, to build the link=cdpcore_static samples")
    ap.add_argument("--build-dir", help="the build tree holding their targets")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--sanitize", action="store_true", help="the library is built with ASan")
    args = ap.parse_args()
    src = Path(args.source_dir).resolve()
    try:
        if args.configure:
            return configure(src, Path(args.configure))
        if not args.work_dir or not args.library:
            ap.error("--work-dir and --library are required to run the samples")
        pages = collect(src)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    count = sum(s.kind != "data" for samples in pages.values() for s in samples.values())
    if count == 0:
        print("no samples found: docs/*.md should hold file= blocks", file=sys.stderr)
        return 1
    runner = Runner(args)
    for page, samples in pages.items():
        runner.run_page(page, samples)
    for f in runner.failures:
        print(f"FAIL {f}", file=sys.stderr)
    print(f"{count - len(runner.failures)} of {count} samples passed")
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
