"""Where the binding finds libcdpcore, and what it says when it cannot. Each case imports
cdpcore in a fresh interpreter, since a process loads the library once."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from support import BINDING_DIR, REPO

from cdpcore import _lib

SHOW_PATH = "import cdpcore._lib as l; print(l.LIBRARY_PATH)"


def run_python(code, pythonpath, library=None):
    env = {k: v for k, v in os.environ.items() if k != _lib.LIBRARY_ENV}
    env["PYTHONPATH"] = str(pythonpath)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if library is not None:
        env[_lib.LIBRARY_ENV] = str(library)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def installed_libraries():
    return [d / n for d in _lib._prefix_dirs() for n in _lib._library_names()
            if (d / n).exists()]


class LoaderTest(unittest.TestCase):
    def copy_package(self):
        """A copy of the package outside the source tree (no build tree next to it)."""
        root = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, root)
        shutil.copytree(BINDING_DIR / "cdpcore", root / "cdpcore",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
        return root

    def test_the_environment_variable_wins_and_is_not_second_guessed(self):
        ok = run_python(SHOW_PATH, BINDING_DIR, library=_lib.LIBRARY_PATH)
        self.assertEqual(ok.stdout.strip(), _lib.LIBRARY_PATH, ok.stderr)

        missing = "/nonexistent/libcdpcore.so"
        bad = run_python("import cdpcore", BINDING_DIR, library=missing)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("LibraryNotFoundError", bad.stderr)
        self.assertIn(missing, bad.stderr)

    def test_a_library_in_the_package_directory_is_found(self):
        root = self.copy_package()
        copy = root / "cdpcore" / _lib._library_names()[-1]
        shutil.copy(_lib.LIBRARY_PATH, copy)
        result = run_python(SHOW_PATH, root)
        self.assertEqual(result.stdout.strip(), str(copy), result.stderr)

    def test_without_a_library_the_error_lists_every_path_tried(self):
        root = self.copy_package()
        result = run_python(SHOW_PATH, root)
        installed = installed_libraries()
        if installed:  # an installed copy is the next place looked: it must be the one
            self.assertEqual(result.stdout.strip(), str(installed[0]), result.stderr)
            return
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("LibraryNotFoundError", result.stderr)
        self.assertIn(str(root / "cdpcore" / "libcdpcore.so"), result.stderr)
        for d in _lib._prefix_dirs():
            self.assertIn(str(d), result.stderr)

    def test_in_a_source_checkout_the_newest_build_tree_is_found(self):
        if installed_libraries():
            self.skipTest("an installed libcdpcore comes before the build trees")
        # A stand-in checkout, so other build trees on this machine do not interfere.
        repo = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, repo)
        (repo / "capi").mkdir()
        shutil.copy(REPO / "capi" / "cdp.h", repo / "capi")
        shutil.copytree(BINDING_DIR / "cdpcore", repo / "bindings" / "python" / "cdpcore",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
        build = repo / "build"
        older, newer, asan = build / "a" / "libcdpcore.so", build / "b" / "libcdpcore.so", None
        if "libasan" not in os.environ.get("LD_PRELOAD", ""):
            # The newest of all, but a sanitizer build cannot load here: it is passed over.
            asan = build / "asan" / "libcdpcore.so"
        for lib, mtime in ((older, 1_600_000_000), (newer, 1_700_000_000), (asan, 1_800_000_000)):
            if lib is None:
                continue
            lib.parent.mkdir(parents=True)
            shutil.copy(_lib.LIBRARY_PATH, lib)
            os.utime(lib, (mtime, mtime))
        if asan is not None:
            (asan.parent / "CMakeCache.txt").write_text("CDP_SANITIZE:BOOL=ON\n")
        result = run_python(SHOW_PATH, repo / "bindings" / "python")
        self.assertEqual(result.stdout.strip(), str(newer), result.stderr)

    def test_a_library_of_another_major_version_is_refused(self):
        major = _lib.CDP_VERSION_MAJOR
        _lib.check_version(major * 10000 + 99 * 100 + 99)
        with self.assertRaises(_lib.LibraryVersionError) as cm:
            _lib.check_version((major + 1) * 10000)
        self.assertIn(f"major version {major}", str(cm.exception))
        self.assertTrue(issubclass(_lib.LibraryVersionError, ImportError))


if __name__ == "__main__":
    unittest.main()
