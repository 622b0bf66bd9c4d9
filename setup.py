"""The one C extension, optional: the package's metadata is in pyproject.toml.

``fingerprint._native`` holds history's window packing, append and decoding, the
account stability walk (over decoded logins or the packed window) and the session
decoder's look at a record in C (issue 20; see
``fingerprint/native.py``). Where no C compiler is found the build goes on without
it and the same code runs in Python, with the same results.
The module carries the SHA-256 of the source it was built from: a checkout whose
``_native.c`` changed since (an editable install not rebuilt) runs the Python code,
with a warning, rather than C built from other code.
"""

import hashlib
import sys
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "fingerprint/_native.c"
DIGEST = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "fingerprint._native",
            sources=[SOURCE],
            define_macros=[("FINGERPRINT_NATIVE_SOURCE", f'"{DIGEST}"')],
            libraries=[] if sys.platform == "win32" else ["m"],  # log2 (the entropy)
            optional=True,  # no compiler: a pure-Python install, same results
        )
    ]
)
