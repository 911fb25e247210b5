"""Local BM25 search engine and the multi-turn search-agent protocol (IGPO / Search-R1 style).

The agent writes ``<search>query</search>`` to call the engine and ``<answer>...</answer>`` to
finish; the environment replies to a search with ``\\n<information>...</information>\\n``.

Retrieval
---------
BM25 scoring, tokenization, stemming and top-k selection all come from the ``bm25s`` library;
this module only streams the corpus into it and caches the result.

* Corpus format: JSONL, one passage per line, ``{"id", "title", "text"}``.  FlashRAG-style
  ``{"id", "contents"}`` lines, where ``contents`` is ``'"Title"\\ntext'``, are also accepted.
  Blank lines are skipped.  The indexed text of a passage is its title followed by its text, so
  a query naming an entity finds that entity's passage.
* Cache key: the sha256 of the corpus file's *bytes* (not size+mtime+path) plus the tokenizer and
  BM25 settings and an index-format version.  Content hashing is required for correctness, since
  the cache stores byte offsets into the corpus file; it also means a copied or moved corpus reuses
  its index and a touched file does not rebuild.  Hashing costs one sequential read of the file
  per engine construction (seconds for a multi-GB corpus, against hours to index it).
  ``chunk_size`` is not part of the key: it does not change the index (see the tests).
* Bounded memory for large corpora (millions of passages):
    - the JSONL is read line by line; only ``chunk_size`` passage texts are alive at a time.  Each
      chunk is tokenized with ``bm25s.tokenization.Tokenizer.streaming_tokenize``, which grows the
      vocabulary incrementally (ids are assigned in first-seen order, so the ids do not depend on
      the chunk size), and its token ids are appended as raw int32 to a scratch file on disk;
    - ``bm25s.BM25.index`` is then fed a lazy, re-iterable view over that scratch file (a
      ``numpy.memmap``), so no Python list of all token ids is ever built.  What remains in RAM
      during indexing is bm25s's own working set (its score/row/column arrays, about 12 bytes per
      distinct (passage, term) pair, plus the CSC matrix) and the vocabulary dictionaries;
    - passage texts are never kept: each passage's byte span in the JSONL is stored, and a hit is
      read back by slicing an ``mmap`` of the corpus file;
    - at query time the BM25 matrix and the span table are memory-mapped (``mmap=True``).
* Cache layout: ``<cache_dir>/<corpus sha256[:16]>-<settings hash>/`` holding the bm25s index
  files, ``vocab.tokenizer.json``, ``spans.bin`` (int64 pairs ``start, end`` per passage) and
  ``meta.json``.  It is built in a hidden temporary sibling directory and renamed into place, so a
  crashed build never leaves a half-written index that would later be loaded, and of two
  concurrent builders the second simply uses the first one's result.
* Passages that share no term with the query (BM25 score 0) are not returned, so a query may get
  fewer than ``k`` passages, or none: the agent then sees "No results found." instead of
  arbitrary passages.

Protocol
--------
``parse_action`` and ``SearchEnv`` implement one episode; see their docstrings for the exact
rules (reasoning blocks, unclosed tags, both tags present, turn limit).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import mmap
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import bm25s
import numpy as np
import Stemmer
from bm25s.tokenization import Tokenized, Tokenizer

INDEX_FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = Path(".cache") / "bm25"
DEFAULT_TOP_K = 3
DEFAULT_CHUNK_SIZE = 100_000
DEFAULT_MAX_WORDS = 100
DEFAULT_MAX_TURNS = 4
NO_RESULTS = "No results found."

_SPANS_FILE = "spans.bin"
_TOKENS_FILE = "tokens.bin"
_LENGTHS_FILE = "lengths.bin"
_META_FILE = "meta.json"
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Passage:
    """One retrieved passage; ``score`` is its BM25 score for the query."""

    id: str
    title: str
    text: str
    score: float = 0.0


@dataclass(frozen=True)
class IndexSettings:
    """Everything that changes the index; all of it is part of the cache key.

    ``stopwords`` and ``stemmer_language`` are language names understood by bm25s and PyStemmer
    respectively, or ``None`` to disable them.
    """

    lower: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stopwords: str | None = "english"
    stemmer_language: str | None = "english"
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"

    def key(self) -> str:
        """Short stable hash of the settings and the index format version."""
        payload = json.dumps({**asdict(self), "format": INDEX_FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def make_tokenizer(self) -> Tokenizer:
        stemmer = Stemmer.Stemmer(self.stemmer_language) if self.stemmer_language else None
        return Tokenizer(
            lower=self.lower, splitter=self.token_pattern, stopwords=self.stopwords, stemmer=stemmer
        )

    def make_retriever(self) -> bm25s.BM25:
        return bm25s.BM25(k1=self.k1, b=self.b, method=self.method)


# --------------------------------------------------------------------------- corpus reading


def parse_passage_record(record: dict) -> tuple[str, str, str]:
    """Return ``(id, title, text)`` of a passage record.

    Accepted shapes: ``{id, title, text}`` (a missing ``title`` is empty) and FlashRAG's
    ``{id, contents}``, whose first line is the title (surrounding double quotes removed) and
    the rest the text.
    """
    if "text" in record:
        return str(record["id"]), record.get("title", ""), record["text"]
    if "contents" in record:
        title, _, text = record["contents"].partition("\n")
        return str(record["id"]), title.strip().strip('"'), text
    raise ValueError(f"passage record has neither 'text' nor 'contents': {sorted(record)}")


def _iter_corpus_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(start, end, line)`` byte spans of the non-blank lines of a JSONL file."""
    with open(path, "rb") as f:
        end = 0
        for line in f:
            start, end = end, end + len(line)
            if line.strip():
                yield start, end, line


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _index_text(line: bytes) -> str:
    _, title, text = parse_passage_record(json.loads(line))
    return f"{title}\n{text}"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- index building


class _DiskTokenIds(Sequence):
    """Re-iterable per-passage token-id lists backed by a memory-mapped flat int32 array.

    bm25s iterates the corpus three times (lengths, document frequencies, scores); each pass
    reads the scratch file sequentially instead of holding every passage's tokens in RAM.
    """

    def __init__(self, tokens: np.ndarray, lengths: np.ndarray):
        self._tokens = tokens
        self._bounds = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self._tokens[self._bounds[i] : self._bounds[i + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return (self[i] for i in range(len(self)))


def _tokenize_corpus(
    corpus_path: Path, out_dir: Path, tokenizer: Tokenizer, chunk_size: int
) -> int:
    """Stream the corpus through ``tokenizer`` chunk by chunk; write spans, lengths and token ids.

    Returns the number of passages.
    """
    n_passages = 0
    with (
        open(out_dir / _SPANS_FILE, "wb") as spans_f,
        open(out_dir / _LENGTHS_FILE, "wb") as lengths_f,
        open(out_dir / _TOKENS_FILE, "wb") as tokens_f,
    ):
        for chunk in _chunks(_iter_corpus_lines(corpus_path), chunk_size):
            texts = [_index_text(line) for _, _, line in chunk]
            token_ids = list(tokenizer.streaming_tokenize(texts, update_vocab=True))
            np.array([(start, end) for start, end, _ in chunk], dtype=np.int64).tofile(spans_f)
            np.array([len(ids) for ids in token_ids], dtype=np.int32).tofile(lengths_f)
            np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int32).tofile(tokens_f)
            n_passages += len(chunk)
    return n_passages


def build_index(
    corpus_path: Path, index_dir: Path, settings: IndexSettings, chunk_size: int
) -> int:
    """Build the BM25 index of ``corpus_path`` into the (existing, empty) ``index_dir``.

    Returns the number of passages.  The token scratch files are deleted once indexed.
    """
    tokenizer = settings.make_tokenizer()
    n_passages = _tokenize_corpus(corpus_path, index_dir, tokenizer, chunk_size)
    if n_passages == 0:
        raise ValueError(f"corpus {corpus_path} contains no passages")
    docs = _DiskTokenIds(
        np.memmap(index_dir / _TOKENS_FILE, dtype=np.int32, mode="r"),
        np.fromfile(index_dir / _LENGTHS_FILE, dtype=np.int32),
    )
    retriever = settings.make_retriever()
    retriever.index(Tokenized(ids=docs, vocab=tokenizer.get_vocab_dict()), show_progress=False)
    retriever.save(index_dir, show_progress=False)
    tokenizer.save_vocab(index_dir)
    (index_dir / _TOKENS_FILE).unlink()
    (index_dir / _LENGTHS_FILE).unlink()
    return n_passages


def ensure_index(
    corpus_path: str | Path,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    settings: IndexSettings = IndexSettings(),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Return the cached index directory for this corpus and settings, building it if missing."""
    corpus_path, cache_dir = Path(corpus_path), Path(cache_dir)
    corpus_sha = file_sha256(corpus_path)
    index_dir = cache_dir / f"{corpus_sha[:16]}-{settings.key()}"
    if index_dir.is_dir():
        return index_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        n_passages = build_index(corpus_path, build_dir, settings, chunk_size)
        meta = {"corpus_path": str(corpus_path), "corpus_sha256": corpus_sha,
                "num_passages": n_passages, "settings": asdict(settings),
                "format": INDEX_FORMAT_VERSION}
        (build_dir / _META_FILE).write_text(json.dumps(meta, indent=2))
        build_dir.rename(index_dir)
    except OSError:
        if not index_dir.is_dir():  # a concurrent builder winning the rename is fine
            raise
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return index_dir


# --------------------------------------------------------------------------- search engine


class SearchEngine:
    """BM25 search over a JSONL passage corpus, with an on-disk index cache.

    The first construction for a given corpus content and ``settings`` builds the index (streaming
    the corpus ``chunk_size`` lines at a time); later constructions load it memory-mapped.
    Query words whose stem never occurs in the corpus are ignored; a query made only of such
    words (or of stopwords) returns no passage.
    """

    def __init__(
        self,
        corpus_path: str | Path,
        *,
        top_k: int = DEFAULT_TOP_K,
        cache_dir: str | Path = DEFAULT_CACHE_DIR,
        settings: IndexSettings = IndexSettings(),
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ):
        if top_k < 1 or chunk_size < 1:
            raise ValueError("top_k and chunk_size must be positive")
        self.corpus_path = Path(corpus_path)
        self.top_k = top_k
        self.index_dir = ensure_index(self.corpus_path, cache_dir, settings, chunk_size)
        self._retriever = bm25s.BM25.load(self.index_dir, mmap=True, show_progress=False)
        self._tokenizer = settings.make_tokenizer()
        self._tokenizer.load_vocab(self.index_dir)
        spans = np.memmap(self.index_dir / _SPANS_FILE, dtype=np.int64, mode="r")
        self._spans = spans.reshape(-1, 2)
        with open(self.corpus_path, "rb") as f:
            self._corpus = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    @property
    def num_passages(self) -> int:
        return len(self._spans)

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        """Top passages for ``query``, best first (at most ``k``, default ``top_k``)."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int | None = None) -> list[list[Passage]]:
        """``search`` for several queries in one bm25s call."""
        k = self.top_k if k is None else k
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        if not queries:
            return []
        # update_vocab=False: unseen query words are dropped (a stem seen in the corpus is kept).
        query_ids = list(self._tokenizer.streaming_tokenize(list(queries), update_vocab=False))
        doc_rows, score_rows = self._retriever.retrieve(
            query_ids, k=min(k, self.num_passages), show_progress=False
        )
        return [
            [self._read_passage(int(doc), float(score))
             for doc, score in zip(docs, scores) if score > 0]
            for docs, scores in zip(doc_rows, score_rows)
        ]

    def _read_passage(self, doc: int, score: float) -> Passage:
        start, end = self._spans[doc]
        passage_id, title, text = parse_passage_record(json.loads(self._corpus[start:end]))
        return Passage(passage_id, title, text, score)

    def close(self) -> None:
        self._corpus.close()


# --------------------------------------------------------------------------- agent protocol


def _truncate_words(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    return " ".join(words[:max_words]) + " ..."


def format_information(passages: Sequence[Passage], max_words: int = DEFAULT_MAX_WORDS) -> str:
    """Text placed between ``<information>`` and ``</information>``.

    One line per passage, ``Doc i (Title: T) text``, with each text cut to ``max_words``
    whitespace-separated words (whitespace collapsed; " ..." marks a cut).  An empty result is
    reported as "No results found."
    """
    if not passages:
        return NO_RESULTS
    return "\n".join(
        f"Doc {i} (Title: {p.title}) {_truncate_words(p.text, max_words)}"
        for i, p in enumerate(passages, start=1)
    )


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_ACTION_TAG = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)


def parse_action(text: str) -> tuple[str, str | None]:
    """Parse one model turn into an action.

    Returns ``("search", query)``, ``("answer", answer)`` or ``("invalid", None)``.

    Rules, applied in order:

    1. Reasoning is ignored: every complete ``<think>...</think>`` block is removed, and if a
       ``</think>`` is left without its opening tag (chat templates that open the block in the
       prompt), everything up to it is removed as well.  An unclosed ``<think>`` is not
       reasoning and stays.
    2. In what remains, the leftmost *complete* ``<search>...</search>`` or
       ``<answer>...</answer>`` decides the action; when both appear, whichever complete tag
       opens first wins and the rest of the text is ignored.  Unclosed tags never count, so
       ``<search>q <answer>a</answer>`` is an answer.
    3. The tag content is stripped of surrounding whitespace; an empty content is invalid.
    4. No complete tag at all is invalid.
    """
    text = _THINK_BLOCK.sub("", text)
    _, closed, after = text.partition("</think>")
    if closed:
        text = after
    match = _ACTION_TAG.search(text)
    if match is None or not match.group(2).strip():
        return "invalid", None
    return match.group(1), match.group(2).strip()


SEARCH_R1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first "
    "every time you get new information. After reasoning, if you find you lack some knowledge, "
    "you can call a search engine by <search> query </search> and it will return the top "
    "searched results between <information> and </information>. You can search as many times "
    "as you want. If you find no further external knowledge needed, you can directly provide "
    "the answer inside <answer> and </answer>, without detailed illustrations. For example, "
    "<answer> Beijing </answer>. Question: {question}\n"
)

# Search-R1's instructions followed by one worked episode, for models too small to follow the
# instructions alone (the mini profile); the example's facts are common knowledge.
SEARCH_R1_EXAMPLE_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first "
    "every time you get new information. After reasoning, if you find you lack some knowledge, "
    "you can call a search engine by <search> query </search> and it will return the top "
    "searched results between <information> and </information>. You can search as many times "
    "as you want. If you find no further external knowledge needed, you can directly provide "
    "the answer inside <answer> and </answer>, without detailed illustrations. Example:\n"
    "Question: Who directed the film Jaws?\n"
    "<search> Jaws film </search>\n"
    "<information>Doc 1 (Title: Jaws (film)) Jaws is a 1975 American thriller film directed by "
    "Steven Spielberg.</information>\n"
    "<think> Jaws was directed by Steven Spielberg. </think>\n"
    "<answer> Steven Spielberg </answer>\n"
    "Question: {question}\n"
)
PROMPTS = {"search_r1": SEARCH_R1_PROMPT, "search_r1_example": SEARCH_R1_EXAMPLE_PROMPT}


class SearchEnv:
    """One search-agent episode.

    A *turn* is one model output passed to ``step``; an episode has at most ``max_turns`` of them.

    * ``<search>q</search>``: the engine is queried and the observation
      ``"\\n<information>...</information>\\n"`` is returned (``done=False``), except on the last
      allowed turn, where no further model turn could read the results: the episode ends with no
      answer (``info["truncated"] = True``) and the search is not run.
    * ``<answer>a</answer>``: the episode ends with ``info["answer"] = a``.
    * anything ``parse_action`` calls invalid: the episode ends with ``info["malformed"] = True``.

    ``info`` always holds ``action``, ``query``, ``answer``, ``turn`` (1-based), ``search_calls``
    (searches actually run so far), ``malformed`` and ``truncated``.  ``engine`` needs only a
    ``search(query, k)`` method.  The default prompt is Search-R1's, which IGPO's local-retrieval
    setting uses; ``prompt_template`` must contain ``{question}``.
    """

    def __init__(
        self,
        engine: SearchEngine,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        top_k: int | None = None,
        max_words: int = DEFAULT_MAX_WORDS,
        prompt_template: str = SEARCH_R1_PROMPT,
    ):
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.engine = engine
        self.max_turns = max_turns
        self.top_k = top_k
        self.max_words = max_words
        self.prompt_template = prompt_template
        self.done = True
        self.turn = 0
        self.search_calls = 0

    def reset(self, question: str) -> str:
        """Start an episode; return the user prompt (instructions and question)."""
        self.done = False
        self.turn = 0
        self.search_calls = 0
        return self.prompt_template.format(question=question)

    def step(self, model_output: str) -> tuple[str | None, bool, dict]:
        """Apply one model turn; return ``(observation or None, done, info)``."""
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self.turn += 1
        action, content = parse_action(model_output)
        if action == "answer":
            return self._finish(action, answer=content)
        if action == "invalid":
            return self._finish(action, malformed=True)
        if self.turn >= self.max_turns:
            return self._finish(action, query=content, truncated=True)
        passages = self.engine.search(content, k=self.top_k)
        self.search_calls += 1
        information = format_information(passages, self.max_words)
        observation = f"\n<information>{information}</information>\n"
        return observation, False, self._info(action, query=content)

    def _finish(self, action: str, **fields) -> tuple[None, bool, dict]:
        self.done = True
        return None, True, self._info(action, **fields)

    def _info(
        self, action: str, *, query=None, answer=None, malformed=False, truncated=False
    ) -> dict:
        return {
            "action": action,
            "query": query,
            "answer": answer,
            "turn": self.turn,
            "search_calls": self.search_calls,
            "malformed": malformed,
            "truncated": truncated,
        }
