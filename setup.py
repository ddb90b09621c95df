"""Build of gpupq's one compiled module, the numpy backend's nearest-target kernel.

Everything else is in pyproject.toml. The extension is optional: where no C compiler is at hand
the install still succeeds and gpupq runs the same assignment as array code (numpy's product and
argmin), slower; ``gpupq estimate`` names the kernel it used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gpupq._native",
            ["gpupq/_native.c"],
            # -O3 vectorises the portable path; the x86 paths pick their instructions per function
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
