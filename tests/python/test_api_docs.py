"""The package's public surface is documented and typed: every name in cdpcore.__all__
has a docstring, and every public function and method has its own docstring, an
annotation on each parameter and a return annotation (__init__ too, documented by its
class). A method added without them
fails here, so help(cdpcore.Engine) and a type checker always see the whole API."""

import inspect
import unittest

from support import cdpcore

# Methods that Python defines the meaning of; their protocol is their documentation.
PROTOCOL = {"__enter__", "__exit__", "__del__", "__repr__", "__iter__", "__len__"}


def _public_functions(obj):
    """(qualified name, function) for obj's own public functions and __init__."""
    for name, member in vars(obj).items():
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        elif isinstance(member, property):
            member = member.fget
        if not inspect.isfunction(member):
            continue
        if name.startswith("_") and name != "__init__" or name in PROTOCOL:
            continue
        yield f"{obj.__name__}.{name}", member


def _undocumented(qualname, fn):
    """What fn lacks: a docstring, parameter annotations, a return annotation."""
    missing = []
    # fn.__doc__, not inspect.getdoc, which would lend a method the docstring of the one
    # it overrides. A constructor is documented by its class's docstring.
    if not (fn.__doc__ or "").strip() and fn.__name__ != "__init__":
        missing.append("docstring")
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    unannotated = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if unannotated:
        missing.append("annotation on " + ", ".join(unannotated))
    if inspect.signature(fn).return_annotation is inspect.Signature.empty:
        missing.append("return annotation")
    return f"{qualname} lacks: " + "; ".join(missing) if missing else None


class PublicApiIsDocumented(unittest.TestCase):
    def test_every_exported_name_has_a_docstring(self):
        for name in cdpcore.__all__:
            with self.subTest(name=name):
                self.assertTrue(inspect.getdoc(getattr(cdpcore, name)),
                                f"cdpcore.{name} has no docstring")

    def test_every_public_function_and_method_is_documented_and_typed(self):
        checked, problems = 0, []
        for name in cdpcore.__all__:
            obj = getattr(cdpcore, name)
            if inspect.isfunction(obj):
                found = [(name, obj)]
            elif inspect.isclass(obj) and not issubclass(obj, BaseException):
                found = list(_public_functions(obj))
            else:
                continue
            for qualname, fn in found:
                checked += 1
                problem = _undocumented(qualname, fn)
                if problem:
                    problems.append(problem)
        self.assertEqual(problems, [])
        # The Engine alone has dozens of methods; finding few means the walk is broken.
        self.assertGreater(checked, 40)

    def test_the_check_catches_a_bare_method(self):
        def bare(self, x):
            return x
        self.assertEqual(_undocumented("T.bare", bare),
                         "T.bare lacks: docstring; annotation on x; return annotation")


if __name__ == "__main__":
    unittest.main()
