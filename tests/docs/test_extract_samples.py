"""The docs_samples checker must fail when a sample does: each case writes a small source
tree (a docs/ page, with capi/, include/ and bindings/ linked from this checkout) and
runs extract_samples.py on it.

Run by ctest as docs_samples_selftest, with CDPCORE_LIBRARY set to the built library.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "extract_samples.py"
FENCE = "```"
# A sanitizer build's library needs sanitized samples (set by tests/docs/CMakeLists.txt).
SANITIZE = ["--sanitize"] if os.environ.get("CDP_DOCS_SANITIZE", "").upper() in ("1", "ON") else []

GOOD_C = f"""
{FENCE}c file=hello.c
#include <cdp.h>
#include <stdio.h>
{FENCE}

Prose between the two halves of one program.

{FENCE}c file=hello.c
int main(void) {{
  FILE *f = fopen("greeting.txt", "r");
  char word[16] = "";
  if (!f || fscanf(f, "%15s", word) != 1) return 1;
  fclose(f);
  printf("%s %d\\n", word, cdp_version() / 10000);
  return 0;
}}
{FENCE}

{FENCE}text file=greeting.txt
hello
{FENCE}

{FENCE}text output=hello.c
hello 0
{FENCE}
"""

GOOD_PY = f"""
{FENCE}python file=ok.py
import cdpcore
with cdpcore.Engine() as e:
    assert e.resolve("mobile", "13917205836") is None
{FENCE}
"""


class ExtractSamplesTest(unittest.TestCase):
    def run_pages(self, pages, *extra):
        """Writes pages ({path: markdown}) into a fresh tree; returns (exit code, output)."""
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp, "src")
            for sub in ("capi", "include", "bindings"):
                (root / sub).parent.mkdir(parents=True, exist_ok=True)
                (root / sub).symlink_to(REPO / sub)
            for path, text in pages.items():
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_text(textwrap.dedent(text))
            p = subprocess.run(
                [sys.executable, str(SCRIPT), "--source-dir", str(root),
                 "--work-dir", str(Path(tmp, "work")),
                 "--library", os.environ["CDPCORE_LIBRARY"], *extra, *SANITIZE],
                capture_output=True, text=True, timeout=300)
            return p.returncode, p.stdout + p.stderr

    def test_good_samples_pass_with_their_output_checked(self):
        rc, out = self.run_pages({"docs/a.md": GOOD_C + GOOD_PY})
        self.assertEqual(rc, 0, out)
        self.assertIn("hello.c (c, output checked", out)
        self.assertIn("2 of 2 samples passed", out)

    def test_compile_error_fails(self):
        rc, out = self.run_pages({"docs/a.md": GOOD_PY + f"{FENCE}c file=bad.c\nint main(void) {{ return x; }}\n{FENCE}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("bad.c: compile failed", out)

    def test_warning_fails(self):
        rc, out = self.run_pages({"docs/a.md": f"{FENCE}c file=warn.c\nint main(void) {{ int unused; return 0; }}\n{FENCE}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("warn.c: compile failed", out)

    def test_failing_run_fails(self):
        rc, out = self.run_pages({"docs/a.md": f"{FENCE}python file=boom.py\nraise SystemExit(3)\n{FENCE}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("boom.py: run failed (exit 3)", out)

    def test_wrong_output_fails(self):
        rc, out = self.run_pages({"docs/a.md": GOOD_C.replace("hello 0\n" + FENCE, "hello 1\n" + FENCE)})
        self.assertEqual(rc, 1, out)
        self.assertIn("its output differs", out)

    def test_output_of_unknown_program_fails(self):
        rc, out = self.run_pages({"docs/a.md": GOOD_PY + f"{FENCE}text output=nope.py\nx\n{FENCE}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("output=nope.py names no program", out)

    def test_code_block_without_file_fails_in_docs_only(self):
        untested = f"{FENCE}c\nint main(void) {{ return 0; }}\n{FENCE}\n"
        rc, out = self.run_pages({"docs/a.md": GOOD_PY + untested})
        self.assertEqual(rc, 1, out)
        self.assertIn("without file=NAME", out)
        rc, out = self.run_pages({"docs/a.md": GOOD_PY,
                                  "docs/b.md": untested.replace(f"{FENCE}c", f"{FENCE}c tested-by=install"),
                                  "README.md": untested})
        self.assertEqual(rc, 0, out)

    def test_readme_samples_run(self):
        rc, out = self.run_pages({"docs/a.md": GOOD_PY,
                                  "README.md": f"{FENCE}python file=r.py\nraise SystemExit(1)\n{FENCE}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("README.md:1 r.py: run failed", out)

    def test_no_samples_fails(self):
        rc, out = self.run_pages({"docs/a.md": "# nothing to run\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("no samples found", out)

    def test_static_sample_needs_its_cmake_target(self):
        rc, out = self.run_pages({"docs/a.md": f"{FENCE}cpp file=core.cpp link=cdpcore_static\nint main() {{}}\n{FENCE}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("no CMake target docs_sample_docs_a_core", out)

    def test_configure_lists_static_samples_and_keeps_unchanged_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp, "docs", "p.md")
            page.parent.mkdir()
            page.write_text(f"{FENCE}cpp file=core.cpp link=cdpcore_static\nint main() {{}}\n{FENCE}\n" + GOOD_PY)
            cmd = [sys.executable, str(SCRIPT), "--source-dir", tmp, "--configure", str(Path(tmp, "out"))]
            first = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            written = Path(tmp, "out", "docs", "p", "core.cpp")
            self.assertEqual(first.strip(), f"docs_sample_docs_p_core={written}")
            self.assertTrue(Path(tmp, "out", "docs", "p", "ok.py").is_file())
            os.utime(written, ns=(1, 1))
            subprocess.run(cmd, capture_output=True, text=True, check=True)
            self.assertEqual(written.stat().st_mtime_ns, 1)  # no rebuild for an unchanged page


if __name__ == "__main__":
    unittest.main()
